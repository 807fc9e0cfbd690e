"""Runs `.pte` programs in the ExecuTorch runtime that ships in the executorch wheel."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.plugins import Runner
from edge_pipeline.tensors import TensorSpec
from edge_pipeline.types import JsonObject

from .torch_session import TorchTensorSession

if TYPE_CHECKING:
    from executorch.extension.pybindings.pybindings import TensorInfo

# c10::ScalarType codes
SCALAR_TYPES = {0: "uint8", 1: "int8", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 11: "bool"}


class ExecutorchRunner(Runner):
    name: ClassVar[str] = "executorch"
    runtime: ClassVar[str] = "ExecuTorch runtime"
    distribution: ClassVar[str] = "executorch"
    suffixes: ClassVar[dict[str, str]] = {".pte": "pte"}

    def preload(self) -> None:
        """Loads the runtime's libraries, so that memory measured afterwards is the model's."""
        from executorch.extension.pybindings import portable_lib  # noqa: F401
        from executorch.runtime import Runtime

        Runtime.get()

    def open(self, path: Path, threads: int, variant: str | None = None) -> TorchTensorSession:
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime

        portable_lib._unsafe_reset_threadpool(threads)   # XNNPACK's pool; must precede loading
        try:
            method = Runtime.get().load_program(str(path)).load_method("forward")
        except Exception as exc:
            raise InputError(f"{path} is not a loadable ExecuTorch program: {exc}") from exc
        meta = method.metadata
        specs = [TensorSpec(f"input_{i}", tuple(meta.input_tensor_meta(i).sizes()),
                            SCALAR_TYPES.get(int(meta.input_tensor_meta(i).dtype()), "float32"))
                 for i in range(meta.num_inputs())]
        return TorchTensorSession(method.execute, specs)

    def signature(self, path: Path) -> JsonObject:
        """Tensors as an app must encode them (the program's own metadata; float I/O even for int8)."""
        from executorch.runtime import Runtime

        meta = Runtime.get().load_program(str(path)).load_method("forward").metadata
        return {"inputs": [_tensor(meta.input_tensor_meta(i)) for i in range(meta.num_inputs())],
                "outputs": [_tensor(meta.output_tensor_meta(i)) for i in range(meta.num_outputs())]}

    def op_profile(self, path: Path, sample: list[np.ndarray], runs: int) -> JsonObject:
        return op_profile(path, sample, runs)


def _tensor(info: TensorInfo) -> JsonObject:
    return {"name": None, "shape": list(info.sizes()), "dtype": SCALAR_TYPES.get(int(info.dtype()), str(info.dtype())),
            "scale": 0.0, "zero_point": 0}


def op_profile(path: Path, sample: list[np.ndarray], runs: int) -> JsonObject:
    """Per-op time inside the program (XNNPACK ops included) from ETDump, read by ExecuTorch's Inspector."""
    import tempfile

    import torch
    from executorch.devtools import Inspector
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(str(path), enable_etdump=True)
    method = program.load_method("forward")
    xs = [torch.from_numpy(np.asarray(x, order="C")) for x in sample]
    for _ in range(runs):
        method.execute(xs)
    with tempfile.TemporaryDirectory() as tmp:
        etdump = Path(tmp) / "run.etdp"
        program.write_etdump_result_to_file(str(etdump), str(Path(tmp) / "debug.bin"))
        frame = Inspector(etdump_path=str(etdump)).to_dataframe()
    frame = frame[(frame["event_block_name"] == "Execute") & ~frame["event_name"].isin(
        ["Method::execute", "DELEGATE_CALL"])]
    rows: list[JsonObject] = [
        {"op": str(r["event_name"]).split(" #")[0], "name": str(r["event_name"]), "avg_ms": float(r["avg (ms)"]),
         "delegated": bool(r["is_delegated_op"]), "layer": _layer(r.get("module_hierarchy"))}
        for _, r in frame.iterrows()]
    return {"source": "ExecuTorch ETDump + devtools Inspector", "ops": rows}


def _layer(hierarchy: object) -> str | None:
    if isinstance(hierarchy, dict) and hierarchy:
        return str(list(hierarchy)[-1])
    return None
