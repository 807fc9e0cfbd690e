"""LiteRT `.tflite` from a Keras / TensorFlow model with TFLiteConverter (fp32, dynamic, fp16, full int8)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from edge_pipeline.errors import Unsupported
from edge_pipeline.plugins import Exporter, Model
from edge_pipeline.tensors import Tensors
from edge_pipeline.types import JsonObject
from targets.sources.keras_source import SavedModelHandle

from ..coverage import tflite_after
from .converter_configs import TfliteConverterConfig
from .savedmodel import saved_model_dir
from .torch_capture import as_unsupported

if TYPE_CHECKING:
    from tensorflow.lite import TFLiteConverter


class TfTfliteExporter(Exporter):
    name: ClassVar[str] = "tflite-tf"
    format: ClassVar[str] = "tflite"
    suffix: ClassVar[str] = ".tflite"
    frameworks: ClassVar[tuple[str, ...]] = ("tensorflow",)
    precisions: ClassVar[dict[str, str | None]] = {"fp32": None, "int8-dynamic": "tflite-dynamic",
                                                    "fp16": "tflite-fp16", "int8": "tflite-int8",
                                                    "int8-weight": "litert-weight-int8",
                                                    "int16x8": "litert-16x8", "int8-mixed": "litert-mixed"}
    runner: ClassVar[str | None] = "litert"
    distributions: ClassVar[tuple[str, ...]] = ("tensorflow-cpu", "keras", "ai-edge-litert")

    def export(self, model: Model, dest: Path) -> JsonObject:
        """A Keras recurrent layer left as a While loop cannot have its TensorList ops lowered with a dynamic
        batch: such a model is exported again with batch 1 (what an app calls it with) and the export says so."""
        config = model.config(TfliteConverterConfig) or TfliteConverterConfig()
        try:
            return self._convert(model, dest, config, None)
        except Unsupported as exc:
            if "TensorList" not in str(exc) or isinstance(model.module, SavedModelHandle):
                raise
        return {**self._convert(model, dest, config, 1),
                "batch": "batch fixed to 1: a recurrent layer's TensorList ops need a static element shape"}

    def _convert(self, model: Model, dest: Path, config: TfliteConverterConfig, static_batch: int | None
                 ) -> JsonObject:
        import tensorflow as tf

        with saved_model_dir(model, static_batch) as folder:
            converter = tf.lite.TFLiteConverter.from_saved_model(str(folder))
            _configure(converter, config.mode, config.representative)
            try:
                flatbuffer = converter.convert()
            except Exception as exc:
                raise as_unsupported("TFLiteConverter failed", exc) from exc
            notes: JsonObject = {}
            search = config.int8_search
            if config.mode == "int8" and search is not None:
                flatbuffer, notes = search.improve(converter, flatbuffer, model.module, search.data, search.budget,
                                                   search.rank)
        dest.write_bytes(flatbuffer)
        earlier = model.provenance.get("quantization")
        quantization = {**(earlier if isinstance(earlier, dict) else {}), **notes} if notes else None
        return {"converter": f"TFLiteConverter (tensorflow {tf.__version__})", "mode": config.mode,
                "layout": "as the TensorFlow source (NHWC)", "op_coverage": [tflite_after(dest)],
                **({"quantization": quantization} if quantization else {})}


def _configure(converter: TFLiteConverter, mode: str, representative: Tensors | None) -> None:
    import tensorflow as tf

    if mode == "fp32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        samples = representative if representative is not None else Tensors((), ())

        def dataset() -> Iterator[dict[str, np.ndarray]]:
            """One sample at a time, every input by its signature name (the Keras input names)."""
            for i in range(len(samples)):
                yield samples[i:i + 1].as_dict()

        converter.representative_dataset = dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
