"""TFLiteConverter quantization modes for TensorFlow sources. Quantization happens inside the converter,
so these transforms only record the converter settings (and the representative data) on the Model."""
from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from edge_pipeline.plugins import DataBundle, Model


class _ConverterMode:
    name: ClassVar[str]
    mode: ClassVar[str]
    frameworks: ClassVar[tuple[str, ...]] = ("tensorflow",)
    needs_calibration: ClassVar[bool] = False

    def apply(self, model: Model, data: DataBundle) -> Model:
        extras = {**model.extras, "tflite_mode": self.mode}
        if self.needs_calibration:
            extras["representative"] = data.calibration
        quantization = {"scheme": f"TFLiteConverter {self.mode}",
                        "calibration_samples": int(len(data.calibration)) if self.needs_calibration else 0}
        return replace(model, extras=extras, provenance={**model.provenance, "quantization": quantization})


class TfliteDynamic(_ConverterMode):
    """Dynamic-range: int8 weights, float activations quantized on the fly."""
    name, mode = "tflite-dynamic", "dynamic"


class TfliteFloat16(_ConverterMode):
    name, mode = "tflite-fp16", "fp16"


class TfliteInt8(_ConverterMode):
    """Full integer: int8 weights and activations, int8 input/output, calibrated on representative data."""
    name, mode = "tflite-int8", "int8"
    needs_calibration = True
