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
def saved_model_dir(model: Model) -> Iterator[Path]:
    """Yields the source's own SavedModel folder, or a temporary `model.export()` of a Keras model.

    `model.export()` is the path that keeps the weights: wrapping a Keras 3 model in tf.function converts to a
    weightless graph that outputs NaN (see STACK.md), which validation would then reject.
    """
    if isinstance(model.module, SavedModelHandle) and (Path(model.module.path) / "saved_model.pb").is_file():
        yield Path(model.module.path)
        return
    with tempfile.TemporaryDirectory(prefix="edgepipe-savedmodel-") as tmp:
        target = Path(tmp) / "saved_model"
        try:
            model.module.export(str(target), format="tf_saved_model", verbose=False)
        except Exception as exc:
            raise Unsupported(f"Keras could not export a SavedModel: {exc}") from exc
        yield target
