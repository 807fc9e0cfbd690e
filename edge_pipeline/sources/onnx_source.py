"""An `.onnx` file as the source model: run by ONNX Runtime for the reference, bridged for other formats."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..plugins import DataBundle, Model
from ..types import SourceSpec
from .user_data import example_inputs, load_bundle, short


@dataclass
class OnnxHandle:
    path: Path
    session: Any
    input_name: str

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]


def load_onnx_source(spec: SourceSpec, path: Path) -> tuple[Model, DataBundle]:
    import onnx
    import onnxruntime as ort

    if not path.is_file():
        raise InputError(f"model file not found: {path}")
    try:
        graph = onnx.load(str(path))
        onnx.checker.check_model(graph)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise InputError(f"{path} is not a valid ONNX model: {type(exc).__name__}: {short(exc)}") from exc
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise InputError(f"{path} takes {len(inputs)} inputs; edgepipe handles single-input models")
    handle = OnnxHandle(path, session, inputs[0].name)
    example = example_inputs(spec) if spec.example_inputs is not None else _example_from_graph(inputs[0], path)
    try:
        handle(example)
    except Exception as exc:
        raise InputError(f"the model does not accept example inputs of shape {list(example.shape)}: {short(exc)}") from exc
    return Model("onnx", handle, (example,), {"kind": "onnx", "path": str(path)}), load_bundle(spec, example)


def _example_from_graph(node: Any, path: Path) -> np.ndarray:
    shape = node.shape
    if not all(isinstance(d, int) and d > 0 for d in shape):
        raise InputError(f"{path} has a dynamic input shape {shape}: set 'example-inputs' to a fixed shape")
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)
