"""An `.onnx` file as the source model: run by ONNX Runtime for the reference, bridged for other formats."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_pipeline.errors import InputError
from edge_pipeline.plugins import Model
from edge_pipeline.sources.user_data import describe, example_inputs, short
from edge_pipeline.tensors import Tensors, TensorSpec, random_inputs
from edge_pipeline.types import SourceSpec


@dataclass
class OnnxHandle:
    path: Path
    session: Any

    def named_outputs(self, batch: Tensors) -> list[tuple[str, Any]]:
        names = [o.name for o in self.session.get_outputs()]
        return list(zip(names, self.session.run(None, batch.as_dict())))


def load_onnx_source(spec: SourceSpec, path: Path) -> tuple[Model, Tensors]:
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
    handle = OnnxHandle(path, session)
    specs = onnx_input_specs(session)
    names = tuple(s.name for s in specs)
    example = example_inputs(spec, names) if spec.example_inputs is not None else \
        random_inputs(specs, what=f"{path} (set 'example-inputs')")
    try:
        handle.named_outputs(example)
    except Exception as exc:
        raise InputError(f"the model does not accept example inputs of shape {describe(example)}: {short(exc)}") from exc
    return (Model("onnx", handle, example.arrays, {"kind": "onnx", "path": str(path)}, input_names=example.names),
            example)


ONNX_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
               "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(bool)": "bool"}


def onnx_input_specs(session: Any) -> list[TensorSpec]:
    """Named input specs from an ONNX Runtime session; a symbolic dimension keeps its name."""
    return [TensorSpec(i.name, tuple(d if isinstance(d, int) else str(d) for d in i.shape),
                       ONNX_DTYPES.get(i.type, i.type)) for i in session.get_inputs()]
