"""Runs `.tflite` files in the LiteRT interpreter, quantizing int8 I/O with each tensor's own parameters."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypeVar

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.host import check_fits
from edge_pipeline.plugins import GraphView, Runner
from edge_pipeline.types import JsonObject

from .litert_session import LitertSession, TensorDetail, spec_of

if TYPE_CHECKING:
    from ai_edge_litert.interpreter import Interpreter

T = TypeVar("T")


class LitertRunner(Runner):
    name: ClassVar[str] = "litert"
    runtime: ClassVar[str] = "LiteRT interpreter"
    distribution: ClassVar[str] = "ai-edge-litert"
    suffixes: ClassVar[dict[str, str]] = {".tflite": "tflite"}
    graph_view: ClassVar[GraphView | None] = GraphView("builtin_tflite_flatbuffer", (".tflite",))

    def preload(self) -> None:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401

    def open(self, path: Path, threads: int, variant: str | None = None) -> LitertSession:
        from ai_edge_litert.interpreter import Interpreter

        def load() -> Interpreter:
            return _loading(path, lambda: Interpreter(model_path=str(path), num_threads=threads))

        interpreter = load()
        # allocate_tensors allocates every input at its declared shape: checked against the memory budget first
        check_fits(path.name, [spec_of(d["name"], d, fixed=True) for d in interpreter.get_input_details()])
        _loading(path, interpreter.allocate_tensors)
        return LitertSession(interpreter, load)

    def signature(self, path: Path) -> JsonObject:
        """Tensors as an app must encode them: int8 models take and give quantized tensors."""
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(path))
        return {"inputs": [_tensor(d) for d in interpreter.get_input_details()],
                "outputs": [_tensor(d) for d in interpreter.get_output_details()]}

    def op_profile(self, path: Path, sample: list[np.ndarray], runs: int) -> JsonObject:
        from .litert_op_profile import op_profile

        return op_profile(path, runs)

    def node_precisions(self, path: Path) -> dict[str, str]:
        from .litert_graph import node_precisions

        return node_precisions(path)

    def node_errors(self, path: Path, reference: Path, calls: list[list[np.ndarray]]) -> dict[str, float]:
        from .litert_graph import node_errors

        return node_errors(path, reference, calls)


def _loading(path: Path, step: Callable[[], T]) -> T:
    """One step of opening `path`; the interpreter's failure is the file's (one line, exit 2)."""
    try:
        return step()
    except Exception as exc:
        raise InputError(f"{path} is not a loadable LiteRT model: {exc}") from exc


def _tensor(detail: TensorDetail) -> JsonObject:
    scale, zero_point = detail["quantization"]
    return {"name": detail["name"], "shape": [int(d) for d in detail["shape"]],
            "dtype": np.dtype(detail["dtype"]).name, "scale": float(scale), "zero_point": int(zero_point)}


