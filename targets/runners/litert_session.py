"""A LiteRT interpreter behind the Session contract: int8 I/O quantized with each tensor's own parameters."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.plugins import Session
from edge_pipeline.tensors import TensorSpec
from targets.transports.remote_runner import signature_order

if TYPE_CHECKING:
    from ai_edge_litert.interpreter import Interpreter


class TensorDetail(TypedDict):
    """The members of a LiteRT tensor-details dict (`get_input_details()` and friends) this module reads."""

    name: str
    index: int
    shape: np.ndarray
    dtype: type[np.generic]
    quantization: tuple[float, int]
    shape_signature: np.ndarray


class LitertSession(Session):
    """Feeds and reads by signature name when the model has a signature (converters name and reorder I/O:
    litert-torch keeps dict keys and sorts them, TFLiteConverter keeps Keras names), else by tensor index.
    Signature names map to tensor indices, so the session holds no reference into the interpreter's memory."""

    def __init__(self, interpreter: Interpreter, load: Callable[[], Interpreter] | None = None):
        self._interpreter, self._load = interpreter, load
        self._inputs, names, self._outputs, self.output_names = signature_order(interpreter)   # as a board's
        self._names = names
        self.input_specs = [spec_of(n, d) for n, d in zip(names, self._inputs)]
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


def spec_of(name: str, detail: TensorDetail, fixed: bool = False) -> TensorSpec:
    """The input as the model declares it: a dynamic dimension (-1 in its shape signature) past the first is
    named `dimN`; a dynamic batch (the first) is the size it is allocated at, as converters mean it (`fixed`:
    every dimension at its allocated size)."""
    allocated = [int(x) for x in detail["shape"]]
    signature = detail.get("shape_signature")
    declared = allocated if fixed or signature is None else [int(x) for x in signature]
    return TensorSpec(name, tuple(x if x >= 0 else (allocated[i] if i == 0 else f"dim{i}")
                                  for i, x in enumerate(declared)), np.dtype(detail["dtype"]).name)


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
