"""LiteRT `.tflite` from a Keras / TensorFlow model with TFLiteConverter (fp32, dynamic, fp16, full int8)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from edge_pipeline.plugins import ExporterBase, Model
from edge_pipeline.tensors import Tensors

from ..coverage import tflite_after
from .savedmodel import saved_model_dir
from .torch_capture import as_unsupported


class TfTfliteExporter(ExporterBase):
    name: ClassVar[str] = "tflite-tf"
    format: ClassVar[str] = "tflite"
    suffix: ClassVar[str] = ".tflite"
    frameworks: ClassVar[tuple[str, ...]] = ("tensorflow",)
    precisions: ClassVar[dict[str, str | None]] = {"fp32": None, "int8-dynamic": "tflite-dynamic",
                                                    "fp16": "tflite-fp16", "int8": "tflite-int8",
                                                    "int8-weight": "litert-weight-int8",
                                                    "int16x8": "litert-16x8"}
    runner: ClassVar[str] = "litert"
    distributions: ClassVar[tuple[str, ...]] = ("tensorflow-cpu", "keras", "ai-edge-litert")

    def export(self, model: Model, dest: Path) -> dict[str, Any]:
        import tensorflow as tf

        mode = model.converter.tflite_mode
        with saved_model_dir(model) as folder:
            converter = tf.lite.TFLiteConverter.from_saved_model(str(folder))
            _configure(converter, mode, model.converter.representative)
            try:
                flatbuffer = converter.convert()
            except Exception as exc:
                raise as_unsupported("TFLiteConverter failed", exc) from exc
            notes: dict[str, Any] = {}
            debug = model.converter.int8_fallback
            if mode == "int8" and debug is not None:
                flatbuffer, notes = debug.improve(converter, flatbuffer, model.module, debug.data, debug.budget,
                                                  debug.rank)
        dest.write_bytes(flatbuffer)
        quantization = {**model.provenance.get("quantization", {}), **notes} if notes else None
        return {"converter": f"TFLiteConverter (tensorflow {tf.__version__})", "mode": mode,
                "layout": "as the TensorFlow source (NHWC)", "op_coverage": [tflite_after(dest)],
                **({"quantization": quantization} if quantization else {})}


def _configure(converter: Any, mode: str, representative: Tensors | None) -> None:
    import tensorflow as tf

    if mode == "fp32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        samples = representative if representative is not None else Tensors((), ())

        def dataset():
            """One sample at a time, every input by its signature name (the Keras input names)."""
            for i in range(len(samples)):
                yield {name: array[i:i + 1] for name, array in zip(samples.names, samples.arrays)}

        converter.representative_dataset = dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
