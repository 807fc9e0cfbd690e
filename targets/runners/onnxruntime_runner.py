"""Runs `.onnx` and `.ort` files in ONNX Runtime (CPU execution provider)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.host import check_fits
from edge_pipeline.plugins import Runner, Session
from edge_pipeline.types import JsonObject

if TYPE_CHECKING:
    from onnxruntime import InferenceSession


class OnnxRuntimeRunner(Runner):
    name: ClassVar[str] = "onnxruntime"
    runtime: ClassVar[str] = "ONNX Runtime (CPU)"
    distribution: ClassVar[str] = "onnxruntime"
    suffixes: ClassVar[dict[str, str]] = {".onnx": "onnx", ".ort": "ort"}

    def preload(self) -> None:
        import onnxruntime  # noqa: F401

    def open(self, path: Path, threads: int, variant: str | None = None) -> OrtSession:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise InputError(f"{path} is not a loadable ONNX Runtime model: {exc}") from exc
        opened = OrtSession(session)
        check_fits(path.name, opened.input_specs)    # before anyone generates inputs of the declared shapes
        return opened

    def op_profile(self, path: Path, sample: list[np.ndarray], runs: int) -> JsonObject:
        """Per-node kernel time from ONNX Runtime's own profiler (its JSON trace)."""
        import json
        import os
        import tempfile
        from collections import defaultdict

        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            options = ort.SessionOptions()
            options.enable_profiling = True
            options.profile_file_prefix = os.path.join(tmp, "ort")
            options.intra_op_num_threads = 1
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            feed = {i.name: np.asarray(x, order="C") for i, x in zip(session.get_inputs(), sample, strict=True)}
            for _ in range(runs):
                session.run(None, feed)
            trace = json.loads(Path(session.end_profiling()).read_text())
        totals: dict[tuple[str, str], float] = defaultdict(float)
        for event in trace:
            if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
                node = event["name"][: -len("_kernel_time")]
                totals[(event.get("args", {}).get("op_name", "?"), node)] += event["dur"] / 1000.0
        rows: list[JsonObject] = [{"op": op, "name": node, "avg_ms": total / runs, "delegated": False, "layer": node}
                for (op, node), total in totals.items()]
        return {"source": "ONNX Runtime profiler (CPU execution provider)", "ops": rows}


class OrtSession(Session):
    def __init__(self, session: InferenceSession):
        from targets.sources.onnx_source import onnx_input_specs

        self._session = session
        self._inputs = [i.name for i in session.get_inputs()]
        self.input_specs = onnx_input_specs(session)     # a symbolic dimension keeps its name
        self.output_names = [o.name for o in session.get_outputs()]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return list(self._session.run(None, dict(zip(self._inputs, inputs, strict=True))))
