"""Loads a user's Keras / TensorFlow model: a `.keras` or legacy HDF5 `.h5` file (Keras safe mode), a SavedModel
folder, or a factory's Keras model."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.plugins import Model
from edge_pipeline.safe_archive import check_keras_archive
from edge_pipeline.sources.user_data import describe, example_inputs, short
from edge_pipeline.tensors import Tensors, flatten_outputs
from edge_pipeline.types import SourceSpec


@dataclass
class SavedModelHandle:
    """A SavedModel folder and its serving function; exporters convert the folder directly."""

    path: Path
    function: Any
    input_names: tuple[str, ...]

    def named_outputs(self, batch: Tensors) -> list[tuple[str, Any]]:
        import tensorflow as tf

        outputs = self.function(**{n: tf.constant(a) for n, a in zip(batch.names, batch.arrays)})
        return [(name, outputs[name].numpy()) for name in sorted(outputs)]


def load_keras_file(path: Path, safe_mode: bool) -> Any:
    import keras

    if not path.is_file():
        raise InputError(f"model file not found: {path}")
    if path.suffix == ".keras":
        check_keras_archive(path)     # declared sizes first: a zip bomb is refused before anything is extracted
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=safe_mode)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "Lambda" in str(exc):
            raise InputError(f"refused to load {path}: it contains a Lambda layer, whose code Keras safe mode will "
                             f"not run. If you trust the file, set keras-safe-mode = false in the config") from exc
        raise InputError(f"{path} is not a loadable {path.suffix} file: {short(exc)}") from exc
    except Exception as exc:
        raise InputError(f"{path} is not a loadable {path.suffix} file (corrupt?): {type(exc).__name__}: {short(exc)}") from exc


def load_saved_model(path: Path) -> SavedModelHandle:
    import tensorflow as tf

    if not (path / "saved_model.pb").is_file():
        raise InputError(f"{path} is not a SavedModel folder (no saved_model.pb)")
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:
        raise InputError(f"SavedModel {path} cannot be loaded: {type(exc).__name__}: {short(exc)}") from exc
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise InputError(f"SavedModel {path} has no 'serving_default' signature (found: "
                         f"{', '.join(loaded.signatures) or 'none'}); export it with a serving signature")
    inputs = signature.structured_input_signature[1]
    handle = SavedModelHandle(path, signature, tuple(sorted(inputs)))
    handle.keepalive = loaded  # type: ignore[attr-defined]
    return handle


def from_keras(module: Any, spec: SourceSpec, provenance: dict[str, Any]) -> tuple[Model, Tensors]:
    example = example_inputs(spec, keras_input_names(module))
    check_runs(module, example)
    return (Model("tensorflow", module, example.arrays, provenance, input_names=example.names),
            example)


def keras_input_names(module: Any) -> tuple[str, ...]:
    """The model's own input names, in the order it takes them (a SavedModel's signature keys, sorted)."""
    if isinstance(module, SavedModelHandle):
        return module.input_names
    try:
        return tuple(str(getattr(t, "name", f"input_{i}")).split(":")[0] for i, t in enumerate(module.inputs))
    except (AttributeError, ValueError):   # a subclassed model that was never called
        return ()


def check_runs(module: Any, example: Tensors) -> None:
    try:
        run_tf_named(module, example)
    except Exception as exc:
        raise InputError(f"the model does not accept example inputs of shape {describe(example)}: "
                         f"{type(exc).__name__}: {short(exc)}") from exc


def run_tf_named(module: Any, batch: Tensors) -> list[tuple[str, Any]]:
    """Named outputs of a Keras model or SavedModel: a list output is named after the model's outputs."""
    if isinstance(module, SavedModelHandle):
        return module.named_outputs(batch)
    out = module(list(batch.arrays) if len(batch.arrays) > 1 else batch.arrays[0], training=False)
    names = list(getattr(module, "output_names", None) or [])
    if isinstance(out, (list, tuple)) and len(out) > 1 and len(names) == len(out):
        out = dict(zip(names, out))
    return [(name, np.asarray(value)) for name, value in flatten_outputs(out)]


def load_keras_source(spec: SourceSpec, safe_mode: bool = True) -> tuple[Model, Tensors]:
    path = Path(spec.base_dir) / (spec.model or "")
    if (spec.model or "").endswith((".keras", ".h5", ".hdf5")):
        return from_keras(load_keras_file(path, safe_mode), spec, {"kind": "keras", "path": str(path)})
    return from_keras(load_saved_model(path), spec, {"kind": "savedmodel", "path": str(path)})
