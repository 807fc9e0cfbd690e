"""Runs `.tflite` files in the LiteRT interpreter, quantizing int8 I/O with each tensor's own parameters."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypedDict, TypeVar

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.host import check_fits
from edge_pipeline.plugins import GraphView, Runner, Session
from edge_pipeline.tensors import TensorSpec
from edge_pipeline.types import JsonObject
from targets.transports.remote_runner import signature_order

if TYPE_CHECKING:
    from ai_edge_litert.interpreter import Interpreter

T = TypeVar("T")


class TensorDetail(TypedDict):
    """The members of a LiteRT tensor-details dict (`get_input_details()` and friends) this module reads."""

    name: str
    index: int
    shape: np.ndarray
    dtype: type[np.generic]
    quantization: tuple[float, int]
    shape_signature: np.ndarray


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
        check_fits(path.name, [_spec(d["name"], d, fixed=True) for d in interpreter.get_input_details()])
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


class LitertSession(Session):
    """Feeds and reads by signature name when the model has a signature (converters name and reorder I/O:
    litert-torch keeps dict keys and sorts them, TFLiteConverter keeps Keras names), else by tensor index.
    Signature names map to tensor indices, so the session holds no reference into the interpreter's memory."""

    def __init__(self, interpreter: Interpreter, load: Callable[[], Interpreter] | None = None):
        self._interpreter, self._load = interpreter, load
        self._inputs, names, self._outputs, self.output_names = signature_order(interpreter)   # as a board's
        self._names = names
        self.input_specs = [_spec(n, d) for n, d in zip(names, self._inputs)]
        self.input_shapes = [list(s.shape) for s in self.input_specs]
        self.input_shapes_now = [tuple(int(x) for x in d["shape"]) for d in self._inputs]

    def _resize(self, shapes: list[tuple[int, ...]]) -> None:
        """A model with dynamic dimensions, sized to the data before the runtime prepares it: a fresh interpreter
        (XNNPACK cannot reshape one it has already prepared), each input resized, then allocated."""
        if self._load is None:
            raise InputError(f"inputs of shapes {[list(s) for s in shapes]} need the model resized, and this "
                             f"interpreter was opened without its file")
        interpreter = self._load()
        for detail, shape in zip(self._inputs, shapes):
            interpreter.resize_tensor_input(detail["index"], list(shape), strict=True)
        interpreter.allocate_tensors()
        self._interpreter, self.input_shapes_now = interpreter, shapes
    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        shapes = [tuple(v.shape) for v in inputs]
        for name, spec, shape in zip(self._names, self.input_specs, shapes, strict=True):
            if len(spec.shape) != len(shape) or any(isinstance(d, int) and d != n for d, n in zip(spec.shape, shape)):
                raise InputError(f"input '{name}' expects shape {list(spec.shape)}, got {list(shape)}")
        if shapes != self.input_shapes_now:
            self._resize(shapes)
        for detail, value in zip(self._inputs, inputs, strict=True):
            self._interpreter.set_tensor(detail["index"], quantize(value, detail))
        self._interpreter.invoke()
        return [dequantize(self._interpreter.get_tensor(d["index"]), d) for d in self._outputs]


def _loading(path: Path, step: Callable[[], T]) -> T:
    """One step of opening `path`; the interpreter's failure is the file's (one line, exit 2)."""
    try:
        return step()
    except Exception as exc:
        raise InputError(f"{path} is not a loadable LiteRT model: {exc}") from exc


def _spec(name: str, detail: TensorDetail, fixed: bool = False) -> TensorSpec:
    """The input as the model declares it: a dynamic dimension (-1 in its shape signature) past the first is
    named `dimN`; a dynamic batch (the first) is the size it is allocated at, as converters mean it (`fixed`:
    every dimension at its allocated size)."""
    allocated = [int(x) for x in detail["shape"]]
    signature = detail.get("shape_signature")
    declared = allocated if fixed or signature is None else [int(x) for x in signature]
    return TensorSpec(name, tuple(x if x >= 0 else (allocated[i] if i == 0 else f"dim{i}")
                                  for i, x in enumerate(declared)), np.dtype(detail["dtype"]).name)


def _tensor(detail: TensorDetail) -> JsonObject:
    scale, zero_point = detail["quantization"]
    return {"name": detail["name"], "shape": [int(d) for d in detail["shape"]],
            "dtype": np.dtype(detail["dtype"]).name, "scale": float(scale), "zero_point": int(zero_point)}


def quantize(value: np.ndarray, detail: TensorDetail) -> np.ndarray:
    """Float data into a quantized input; integer data (token ids, int64 downcast to int32) is only cast."""
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if dtype.kind not in "iu" or dtype == np.int64 or not scale or value.dtype.kind in "iub":
        return np.asarray(value, dtype=dtype, order="C")
    info = np.iinfo(dtype)
    return np.clip(np.round(value / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(value: np.ndarray, detail: TensorDetail) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if dtype.kind not in "iu" or dtype == np.int64 or not scale:
        return value.astype(np.float32 if dtype.kind == "f" else dtype, copy=True)
    return ((value.astype(np.float32) - zero_point) * scale).astype(np.float32)
