"""Builds the live source Model and its DataBundle from a SourceSpec (inside a worker process).

The framework is decided by the model reference: `.pt2` is PyTorch, `.keras`, `.h5` or a SavedModel folder is
TensorFlow, `.onnx` is ONNX, and a factory's return value is inspected."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_pipeline.errors import InputError, UnknownPlugin
from edge_pipeline.plugins import DataBundle, Model
from edge_pipeline.sources.user_code import call_user, resolve_callable
from edge_pipeline.tensors import Tensors
from edge_pipeline.types import SourceSpec

EXAMPLES = {"torch-digits": "targets.examples.torch_digits:load",
            "keras-digits": "targets.examples.keras_digits:load",
            "fashion-mnist": "targets.examples.fashion_mnist:load"}   # needs Debian's dataset-fashion-mnist
KERAS_FILES = (".keras", ".h5", ".hdf5")     # .h5 / .hdf5: Keras' legacy HDF5 format, loaded in safe mode too


def check_example(spec: SourceSpec) -> None:
    """Cheap check in the parent process, before any worker starts."""
    if spec.model is None and (spec.example or "torch-digits") not in EXAMPLES:
        raise UnknownPlugin("example", spec.example or "", EXAMPLES)


def load_source(spec: SourceSpec, store: Path | None = None) -> tuple[Model, DataBundle]:
    """The live model and its data: the user's batches are checked and spooled into `store` (None: only the
    example, for workers that read the stored data)."""
    check_example(spec)
    if spec.model is None:
        return resolve_callable(EXAMPLES[spec.example or "torch-digits"], "example")()
    from edge_pipeline.sources.user_data import load_bundle

    model, example = _load_model(spec)
    return model, load_bundle(spec, example, store)


def _load_model(spec: SourceSpec) -> tuple[Model, Tensors]:
    path = Path(spec.base_dir) / (spec.model or "")
    if spec.model.endswith(".pt2"):
        from targets.sources.torch_source import load_pt2
        return load_pt2(spec, path)
    if spec.model.endswith(KERAS_FILES) or path.is_dir():
        from targets.sources.keras_source import load_keras_source
        return load_keras_source(spec, safe_mode=spec.keras_safe_mode)
    if spec.model.endswith(".onnx"):
        from targets.sources.onnx_source import load_onnx_source
        return load_onnx_source(spec, path)
    if spec.model.endswith((".tflite", ".pte", ".pt", ".pth")) or "/" in spec.model:
        raise InputError(f"model '{spec.model}' is not a factory ('package.module:function') nor a supported "
                         f"file (.pt2, .keras, .h5, a SavedModel folder, .onnx)")
    return _from_factory(spec)


def _from_factory(spec: SourceSpec) -> tuple[Model, Tensors]:
    ref = spec.model or ""
    obj = call_user(resolve_callable(ref, "model factory", spec.base_dir), ref, "model factory")
    roots = {cls.__module__.split(".")[0] for cls in type(obj).__mro__}
    provenance: dict[str, Any] = {"kind": "factory", "factory": ref}
    if "torch" in roots:
        from targets.sources.torch_source import from_module
        return from_module(obj, spec, provenance)
    if "keras" in roots or "tf_keras" in roots:
        if spec.weights:
            raise InputError("'weights' applies to PyTorch factories; save Keras models as .keras files")
        from targets.sources.keras_source import from_keras
        return from_keras(obj, spec, provenance)
    raise InputError(f"model factory '{ref}' returned {type(obj).__name__}, expected a torch.nn.Module "
                     f"or a Keras model")
