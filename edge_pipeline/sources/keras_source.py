"""Loads a user's Keras / TensorFlow model: a `.keras` or legacy HDF5 `.h5` file (Keras safe mode), a SavedModel
folder, or a factory's Keras model."""
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
class SavedModelHandle:
    """A SavedModel folder and its serving function; exporters convert the folder directly."""

    path: Path
    function: Any
    input_name: str

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        outputs = self.function(**{self.input_name: tf.constant(x)})
        return next(iter(outputs.values())).numpy()


def load_keras_file(path: Path, safe_mode: bool) -> Any:
    import keras

    if not path.is_file():
        raise InputError(f"model file not found: {path}")
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
    if len(inputs) != 1:
        raise InputError(f"SavedModel {path} takes {len(inputs)} inputs; edgepipe handles single-input models")
    handle = SavedModelHandle(path, signature, next(iter(inputs)))
    handle.keepalive = loaded  # type: ignore[attr-defined]
    return handle


def from_keras(module: Any, spec: SourceSpec, provenance: dict[str, Any]) -> tuple[Model, DataBundle]:
    example = example_inputs(spec)
    check_runs(module, example)
    return Model("tensorflow", module, (example,), provenance), load_bundle(spec, example)


def check_runs(module: Any, example: np.ndarray) -> None:
    try:
        run_tf(module, example)
    except Exception as exc:
        raise InputError(f"the model does not accept example inputs of shape {list(example.shape)}: "
                         f"{type(exc).__name__}: {short(exc)}") from exc


def run_tf(module: Any, x: np.ndarray) -> np.ndarray:
    if isinstance(module, SavedModelHandle):
        return module(x)
    out = module(x, training=False)
    while isinstance(out, (list, tuple)):
        out = out[0]
    return np.asarray(out)


def load_keras_source(spec: SourceSpec, safe_mode: bool = True) -> tuple[Model, DataBundle]:
    path = Path(spec.base_dir) / (spec.model or "")
    if (spec.model or "").endswith((".keras", ".h5", ".hdf5")):
        return from_keras(load_keras_file(path, safe_mode), spec, {"kind": "keras", "path": str(path)})
    return from_keras(load_saved_model(path), spec, {"kind": "savedmodel", "path": str(path)})
