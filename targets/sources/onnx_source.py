"""ONNX as a source: an `.onnx` file, checked by the ONNX checker, run by ONNX Runtime for the reference, and
bridged for other formats. An ONNX graph carries no code, so loading it runs nothing of the user's."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.fsutil import sha256_file
from edge_pipeline.plugins import BatchCall, Model, Source
from edge_pipeline.sources.user_data import describe, example_inputs, generated_inputs, short
from edge_pipeline.tensors import Tensors, TensorSpec
from edge_pipeline.types import SourceSpec

if TYPE_CHECKING:
    import onnxruntime as ort

ONNX_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
               "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(bool)": "bool"}


@dataclass(frozen=True)
class OnnxHandle:
    """The file (what exporters and bridges read) and a CPU session on it (what the reference runs on)."""

    path: Path
    session: ort.InferenceSession

    def named_outputs(self, batch: Tensors) -> list[tuple[str, np.ndarray]]:
        names = [o.name for o in self.session.get_outputs()]
        return list(zip(names, self.session.run(None, batch.as_dict())))


class OnnxSource(Source):
    """`.onnx` files; the measures read the file's initializers."""

    name: ClassVar[str] = "onnx"
    framework: ClassVar[str] = "onnx"
    suffixes: ClassVar[tuple[str, ...]] = (".onnx",)

    def load_file(self, spec: SourceSpec, path: Path) -> tuple[Model, Tensors]:
        return load_onnx_source(spec, path)

    def fingerprint(self, model: Model) -> str:
        return sha256_file(_handle(model).path)

    def count_params(self, model: Model) -> int:
        return int(sum(a.size for a in _initializers(model) if a.dtype.kind == "f"))

    def weights_bytes(self, model: Model) -> int:
        return int(sum(a.nbytes for a in _initializers(model)))

    def batch_call(self, model: Model) -> BatchCall:
        return _handle(model).named_outputs


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
        generated_inputs(specs, f"{path} (set 'example-inputs')")
    try:
        handle.named_outputs(example)
    except Exception as exc:
        raise InputError(f"the model does not accept example inputs of shape {describe(example)}: "
                         f"{short(exc)}") from exc
    return (Model("onnx", handle, example.arrays, {"kind": "onnx", "path": str(path)}, input_names=example.names),
            example)


def onnx_input_specs(session: ort.InferenceSession) -> list[TensorSpec]:
    """Named input specs from an ONNX Runtime session; a symbolic dimension keeps its name."""
    return [TensorSpec(i.name, tuple(d if isinstance(d, int) else str(d) for d in i.shape),
                       ONNX_DTYPES.get(i.type, i.type)) for i in session.get_inputs()]


def _handle(model: Model) -> OnnxHandle:
    """The model's handle; an "onnx" model holding anything else is a plugin's bug, not the user's."""
    if not isinstance(model.module, OnnxHandle):
        raise TypeError(f"an onnx Model must hold an OnnxHandle, not a {type(model.module).__name__}")
    return model.module


def _initializers(model: Model) -> list[np.ndarray]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(_handle(model).path))
    return [numpy_helper.to_array(t) for t in graph.graph.initializer]
