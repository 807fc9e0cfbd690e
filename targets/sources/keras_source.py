"""Keras / TensorFlow as a source: a `.keras` or legacy HDF5 file (Keras safe mode, archive checked before
unpacking), a SavedModel folder, or a factory's Keras model. TensorFlow is imported on first use."""
from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol, Union

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.fsutil import sha256_file
from edge_pipeline.plugins import BatchCall, Model, Source
from edge_pipeline.safe_archive import check_keras_archive
from edge_pipeline.sources.user_data import describe, example_inputs, short
from edge_pipeline.tensors import Tensors, flatten_outputs
from edge_pipeline.types import JsonObject, SourceSpec

if TYPE_CHECKING:
    import keras
    import tensorflow as tf


class Restored(Protocol):
    """What `tf.saved_model.load` returns: it owns the variables the serving function reads."""

    variables: Sequence[tf.Variable]
    trainable_variables: Sequence[tf.Variable]


@dataclass(frozen=True)
class SavedModelHandle:
    """A SavedModel folder and its serving function; exporters convert the folder directly. `loaded` keeps
    the restored object (and so the function's variables) alive."""

    path: Path
    function: Callable[..., Mapping[str, tf.Tensor]]
    input_names: tuple[str, ...]
    loaded: Restored

    def named_outputs(self, batch: Tensors) -> list[tuple[str, np.ndarray]]:
        import tensorflow as tf

        outputs = self.function(**{n: tf.constant(a) for n, a in zip(batch.names, batch.arrays)})
        return [(name, outputs[name].numpy()) for name in sorted(outputs)]


KerasModule = Union["keras.Model", SavedModelHandle]


STATE_FILE = "weights.npz"


class KerasSource(Source):
    """Keras and TensorFlow models; `keras-safe-mode = false` is the only way a file's Lambda code runs."""

    name: ClassVar[str] = "keras"
    framework: ClassVar[str] = "tensorflow"
    suffixes: ClassVar[tuple[str, ...]] = (".keras", ".h5", ".hdf5")   # .h5 / .hdf5: legacy HDF5, safe mode too
    layouts: ClassVar[tuple[str, ...]] = ("saved_model.pb",)
    factory_packages: ClassVar[tuple[str, ...]] = ("keras", "tf_keras")

    def load_file(self, spec: SourceSpec, path: Path) -> tuple[Model, Tensors]:
        if path.is_dir():
            return from_keras(load_saved_model(path), spec, {"kind": "savedmodel", "path": str(path)})
        return from_keras(load_keras_file(path, spec.keras_safe_mode), spec, {"kind": "keras", "path": str(path)})

    def from_object(self, obj: object, spec: SourceSpec, provenance: JsonObject) -> tuple[Model, Tensors]:
        if spec.weights:
            raise InputError("'weights' applies to PyTorch factories; save Keras models as .keras files")
        if "tf_keras" in {cls.__module__.split(".")[0] for cls in type(obj).__mro__}:
            import tf_keras as keras
        else:
            import keras
        if not isinstance(obj, keras.Model):     # e.g. a layer, or a tensor
            raise InputError(f"model factory '{spec.model}' returned {type(obj).__name__}, expected a Keras model")
        return from_keras(obj, spec, provenance)

    def save_state(self, model: Model, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / STATE_FILE, *[np.asarray(w.numpy()) for w in model.module.weights])

    def restore_state(self, model: Model, folder: Path) -> Model:
        with np.load(folder / STATE_FILE, allow_pickle=False) as saved:
            values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        try:
            model.module.set_weights(values)
        except ValueError as exc:
            raise InputError(f"model factory '{model.provenance.get('factory')}' built a different model in this "
                             f"process than in the source stage ({' '.join(str(exc).split())[:200]}); a factory "
                             f"must build the same architecture on every call") from exc
        return model

    def fingerprint(self, model: Model) -> str:
        """Hash of the architecture and every weight; a SavedModel folder hashes its files."""
        module = model.module
        digest = hashlib.sha256(type(module).__qualname__.encode())
        if isinstance(module, SavedModelHandle):
            for path in sorted(p for p in module.path.rglob("*") if p.is_file()):
                digest.update(f"{path.relative_to(module.path)}:{sha256_file(path)};".encode())
            return digest.hexdigest()
        digest.update(module.to_json().encode())
        for weight in module.weights:
            value = np.ascontiguousarray(weight.numpy())
            digest.update(f"{weight.path}:{value.dtype}:{value.shape};".encode())
            digest.update(value.tobytes())
        return digest.hexdigest()

    def count_params(self, model: Model) -> int:
        if isinstance(model.module, SavedModelHandle):
            return int(sum(np.prod(v.shape) for v in model.module.loaded.trainable_variables))
        return int(model.module.count_params())

    def weights_bytes(self, model: Model) -> int:
        if isinstance(model.module, SavedModelHandle):
            return int(sum(np.prod(v.shape) * v.dtype.size for v in model.module.loaded.variables))
        return int(sum(np.asarray(w.numpy()).nbytes for w in model.module.weights))

    def batch_call(self, model: Model) -> BatchCall:
        return lambda batch: run_tf_named(model.module, batch)


def load_keras_file(path: Path, safe_mode: bool) -> keras.Model:
    """A `.keras` zip or HDF5 file; safe mode refuses Lambda layers (their code would run on load)."""
    import keras

    if not path.is_file():
        raise InputError(f"model file not found: {path}")
    if path.suffix.lower() == ".keras" or zipfile.is_zipfile(path):
        check_keras_archive(path)     # declared sizes first: a zip bomb is refused before anything is extracted
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=safe_mode)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "Lambda" in str(exc):
            raise InputError(f"refused to load {path}: it contains a Lambda layer, whose code Keras safe mode will "
                             f"not run. If you trust the file, set keras-safe-mode = false in the config") from exc
        raise InputError(f"{path} is not a loadable {path.suffix} file: {short(exc)}") from exc
    except Exception as exc:
        raise InputError(f"{path} is not a loadable {path.suffix} file (corrupt?): {type(exc).__name__}: "
                         f"{short(exc)}") from exc


def load_saved_model(path: Path) -> SavedModelHandle:
    """A SavedModel folder through its `serving_default` signature (a graph: no Python code runs)."""
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
    return SavedModelHandle(path, signature, tuple(sorted(inputs)), loaded)


def from_keras(module: KerasModule, spec: SourceSpec, provenance: JsonObject) -> tuple[Model, Tensors]:
    example = example_inputs(spec, keras_input_names(module))
    check_runs(module, example)
    return (Model("tensorflow", module, example.arrays, provenance, input_names=example.names),
            example)


def keras_input_names(module: KerasModule) -> tuple[str, ...]:
    """The model's own input names, in the order it takes them (a SavedModel's signature keys, sorted)."""
    if isinstance(module, SavedModelHandle):
        return module.input_names
    try:
        return tuple(str(t.name).split(":")[0] for t in module.inputs)
    except (AttributeError, ValueError):   # a subclassed model that was never called
        return ()


def check_runs(module: KerasModule, example: Tensors) -> None:
    try:
        run_tf_named(module, example)
    except Exception as exc:
        raise InputError(f"the model does not accept example inputs of shape {describe(example)}: "
                         f"{type(exc).__name__}: {short(exc)}") from exc


def run_tf_named(module: KerasModule, batch: Tensors) -> list[tuple[str, np.ndarray]]:
    """Named outputs of a Keras model or SavedModel: a list output is named after the model's outputs."""
    if isinstance(module, SavedModelHandle):
        return module.named_outputs(batch)
    out = module(list(batch.arrays) if len(batch.arrays) > 1 else batch.arrays[0], training=False)
    try:
        names = list(module.output_names or [])
    except AttributeError:   # only functional models name their outputs
        names = []
    if isinstance(out, (list, tuple)) and len(out) > 1 and len(names) == len(out):
        out = dict(zip(names, out))
    return [(name, np.asarray(value)) for name, value in flatten_outputs(out)]
