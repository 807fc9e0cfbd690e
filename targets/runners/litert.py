"""Runs `.tflite` files in the LiteRT interpreter, quantizing int8 I/O with each tensor's own parameters."""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edge_pipeline.errors import InputError


class LitertRunner:
    name: ClassVar[str] = "litert"
    runtime: ClassVar[str] = "LiteRT interpreter"
    distribution: ClassVar[str] = "ai-edge-litert"
    suffixes: ClassVar[dict[str, str]] = {".tflite": "tflite"}

    def preload(self) -> None:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401

    def open(self, path: Path, threads: int) -> "LitertSession":
        from ai_edge_litert.interpreter import Interpreter

        try:
            interpreter = Interpreter(model_path=str(path), num_threads=threads)
            interpreter.allocate_tensors()
        except Exception as exc:
            raise InputError(f"{path} is not a loadable LiteRT model: {exc}") from exc
        return LitertSession(interpreter)

    def signature(self, path: Path) -> dict[str, Any]:
        """Tensors as an app must encode them: int8 models take and give quantized tensors."""
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(path))
        return {"inputs": [_tensor(d) for d in interpreter.get_input_details()],
                "outputs": [_tensor(d) for d in interpreter.get_output_details()]}

    def op_profile(self, path: Path, sample: np.ndarray, runs: int) -> dict[str, Any]:
        from .litert_op_profile import op_profile

        return op_profile(path, runs)


class LitertSession:
    def __init__(self, interpreter: Any):
        self._interpreter = interpreter
        self._inputs = interpreter.get_input_details()
        self._outputs = interpreter.get_output_details()
        self.input_shapes = [list(d["shape"]) for d in self._inputs]
        self.input_dtypes = [np.dtype(d["dtype"]).name for d in self._inputs]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        for detail, value in zip(self._inputs, inputs, strict=True):
            if tuple(detail["shape"]) != value.shape:
                raise InputError(f"input '{detail['name']}' expects shape {list(detail['shape'])}, got {list(value.shape)}")
            self._interpreter.set_tensor(detail["index"], quantize(value, detail))
        self._interpreter.invoke()
        return [dequantize(self._interpreter.get_tensor(d["index"]), d) for d in self._outputs]


def _tensor(detail: dict[str, Any]) -> dict[str, Any]:
    scale, zero_point = detail["quantization"]
    return {"name": detail["name"], "shape": [int(d) for d in detail["shape"]],
            "dtype": np.dtype(detail["dtype"]).name, "scale": float(scale), "zero_point": int(zero_point)}


def quantize(value: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype.kind not in "iu" or dtype == np.int64:
        return np.ascontiguousarray(value, dtype=dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(value / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(value: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype.kind not in "iu" or dtype == np.int64:
        return value.astype(np.float32, copy=True)
    scale, zero_point = detail["quantization"]
    return ((value.astype(np.float32) - zero_point) * scale).astype(np.float32)
