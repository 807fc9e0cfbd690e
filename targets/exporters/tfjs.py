"""TF.js graph model (`model.json` + weight shards) from a TensorFlow SavedModel, with fp32, float16 or
uint8 weights. Layers models are not written: converted from Keras 3 they fail to load in TF.js."""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import ClassVar

from edge_pipeline.errors import MissingDependency
from edge_pipeline.plugins import Exporter, Model
from edge_pipeline.types import JsonObject

from .converter_configs import TfjsWeightsConfig
from .savedmodel import saved_model_dir
from .torch_capture import as_unsupported

SHARD_BYTES = 4 * 1024 * 1024


class TfjsExporter(Exporter):
    name: ClassVar[str] = "tfjs"
    format: ClassVar[str] = "tfjs"
    suffix: ClassVar[str] = "-tfjs"
    is_directory: ClassVar[bool] = True
    frameworks: ClassVar[tuple[str, ...]] = ("tensorflow",)
    precisions: ClassVar[dict[str, str | None]] = {"fp32": None, "fp16": "tfjs-fp16", "uint8": "tfjs-uint8"}
    runner: ClassVar[str | None] = "tfjs-node"
    distributions: ClassVar[tuple[str, ...]] = ("tensorflowjs", "tensorflow-cpu")

    def export(self, model: Model, dest: Path) -> JsonObject:
        converter = import_converter()
        config = model.config(TfjsWeightsConfig)
        weights = config.dtype if config is not None else None
        with saved_model_dir(model) as folder:
            try:
                converter.convert_tf_saved_model(str(folder), str(dest), signature_def="serving_default",
                                                 saved_model_tags="serve", weight_shard_size_bytes=SHARD_BYTES,
                                                 quantization_dtype_map={weights: True} if weights else None)
            except Exception as exc:
                raise as_unsupported("the TF.js converter failed", exc) from exc
        shards = sorted(p.name for p in dest.glob("*.bin"))
        return {"converter": "tensorflowjs 4.22 graph model", "weights": weights or "float32",
                "shards": shards, "shard_bytes": sum((dest / s).stat().st_size for s in shards)}


def import_converter() -> types.ModuleType:
    """The TF.js converter imports `tensorflow_decision_forests` at the top of its SavedModel module, and that
    package pins an older TensorFlow. Its import only registers decision-forest ops, which a graph model
    exported by edgepipe never contains; when it is absent, an empty stand-in takes its place. TensorFlow is
    imported first (a stand-in registered earlier breaks Keras)."""
    import tensorflow  # noqa: F401

    if importlib.util.find_spec("tensorflowjs") is None:
        raise MissingDependency("tensorflowjs", "the tfjs exporter",
                                "pip install --no-deps tensorflowjs==4.22.0 tensorflow-hub 'setuptools<81'")
    if importlib.util.find_spec("tensorflow_decision_forests") is None:
        sys.modules.setdefault("tensorflow_decision_forests", types.ModuleType("tensorflow_decision_forests"))
    from tensorflowjs.converters import tf_saved_model_conversion_v2

    return tf_saved_model_conversion_v2
