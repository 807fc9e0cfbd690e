"""Runs `.onnx` and `.ort` files in ONNX Runtime (CPU execution provider)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.host import check_fits
from edge_pipeline.plugins import GraphView, Runner, Session
from edge_pipeline.types import JsonObject

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

TRACED_MAX_BYTES = 256 << 20


class OnnxRuntimeRunner(Runner):
    name: ClassVar[str] = "onnxruntime"
    runtime: ClassVar[str] = "ONNX Runtime (CPU)"
    distribution: ClassVar[str] = "onnxruntime"
    suffixes: ClassVar[dict[str, str]] = {".onnx": "onnx", ".ort": "ort"}
    graph_view: ClassVar[GraphView | None] = GraphView("onnx_adapter", (".onnx",), "model_explorer_onnx")

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
            options.log_severity_level = 3
            if path.suffix == ".onnx" and path.stat().st_size < TRACED_MAX_BYTES:   # the graph ONNX Runtime runs,
                # to trace its nodes to the shipped ones (a copy of the weights: not for a large model)
                options.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            feed = {i.name: np.asarray(x, order="C") for i, x in zip(session.get_inputs(), sample, strict=True)}
            for _ in range(runs):
                session.run(None, feed)
            trace = json.loads(Path(session.end_profiling()).read_text())
            shipped = _traced_nodes(path, Path(tmp) / "optimized.onnx")
        totals: dict[tuple[str, str], float] = defaultdict(float)
        for event in trace:
            if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
                node = event["name"][: -len("_kernel_time")]
                totals[(event.get("args", {}).get("op_name", "?"), node)] += event["dur"] / 1000.0
        rows: list[JsonObject] = [{"op": op, "name": node, "avg_ms": total / runs, "delegated": False, "layer": node,
                                   **({"node": shipped[node]} if node in shipped else {})}
                                  for (op, node), total in totals.items()]
        return {"source": "ONNX Runtime profiler (CPU execution provider)", "ops": rows}


    def node_precisions(self, path: Path) -> dict[str, str]:
        from .ort_graph import node_precisions

        return node_precisions(path) if path.suffix == ".onnx" else {}

    def node_errors(self, path: Path, reference: Path, calls: list[list[np.ndarray]]) -> dict[str, float]:
        from .ort_graph import node_errors

        return node_errors(path, reference, calls) if path.suffix == reference.suffix == ".onnx" else {}


def _traced_nodes(shipped: Path, optimized: Path) -> dict[str, str]:
    """The node ONNX Runtime ran -> the shipped node it came from ({} when the optimized graph was not saved)."""
    import onnx

    from .ort_graph import shipped_nodes

    if not optimized.is_file():
        return {}
    return shipped_nodes(onnx.load(str(shipped), load_external_data=False),
                         onnx.load(str(optimized), load_external_data=False))


class OrtSession(Session):
    def __init__(self, session: InferenceSession):
        from targets.sources.onnx_source import onnx_input_specs

        self._session = session
        self._inputs = [i.name for i in session.get_inputs()]
        self.input_specs = onnx_input_specs(session)     # a symbolic dimension keeps its name
        self.output_names = [o.name for o in session.get_outputs()]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return list(self._session.run(None, dict(zip(self._inputs, inputs, strict=True))))
