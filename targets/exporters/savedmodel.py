"""A SavedModel folder for any TensorFlow-side Model: the common input of the TFLite, TF.js and ONNX converters."""
from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edge_pipeline.errors import Unsupported
from edge_pipeline.plugins import Model
from targets.sources.keras_source import SavedModelHandle


@contextlib.contextmanager
def saved_model_dir(model: Model, static_batch: int | None = None) -> Iterator[Path]:
    """Yields the source's own SavedModel folder, or a temporary `model.export()` of a Keras model
    (`static_batch`: its inputs' batch dimension fixed to that size instead of left dynamic).

    `model.export()` is the path that keeps the weights: wrapping a Keras 3 model in tf.function converts to a
    weightless graph that outputs NaN (see STACK.md), which validation would then reject.
    """
    if isinstance(model.module, SavedModelHandle) and (Path(model.module.path) / "saved_model.pb").is_file():
        yield Path(model.module.path)
        return
    with tempfile.TemporaryDirectory(prefix="edgepipe-savedmodel-") as tmp:
        target = Path(tmp) / "saved_model"
        try:
            signature = _static_signature(model.module, static_batch) if static_batch else None
            model.module.export(str(target), format="tf_saved_model", verbose=False, input_signature=signature)
        except Exception as exc:
            raise Unsupported(f"Keras could not export a SavedModel: {exc}") from exc
        yield target


def _static_signature(keras_model: object, batch: int) -> list[object]:
    """The model's own inputs with the batch dimension fixed, structured as `call` takes them (a dict for a
    model built on a dict of inputs)."""
    import tensorflow as tf

    inputs = list(getattr(keras_model, "inputs", None) or [])
    specs = {i.name: tf.TensorSpec((batch, *i.shape[1:]), i.dtype, name=i.name) for i in inputs}
    structure = getattr(keras_model, "_inputs_struct", None)
    return [specs] if isinstance(structure, dict) else [[specs[i.name] for i in inputs]]
