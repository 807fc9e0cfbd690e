"""Quantization that happens inside a converter (TFLiteConverter, the TF.js converter): these transforms
only record the converter setting, and the representative data where needed, on the Model."""
from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from edge_pipeline.plugins import DataBundle, Int8Fallback, Model, TransformBase

from .sensitivity import Budgeted


class ConverterSetting(TransformBase):
    name: ClassVar[str]
    key: ClassVar[str]       # a ConverterSettings field
    value: ClassVar[str]
    frameworks: ClassVar[tuple[str, ...]] = ("tensorflow",)
    needs_calibration: ClassVar[bool] = False
    distributions: ClassVar[tuple[str, ...]] = ()

    def apply(self, model: Model, data: DataBundle) -> Model:
        settings = {self.key: self.value}
        if self.needs_calibration:
            settings["representative"] = data.calibration
        quantization = {"scheme": f"{self.key} = {self.value}",
                        "calibration_samples": int(len(data.calibration)) if self.needs_calibration else 0}
        return replace(model, converter=replace(model.converter, **settings),
                       provenance={**model.provenance, "quantization": quantization})


class TfliteDynamic(ConverterSetting):
    """Dynamic range: int8 weights, activations quantized on the fly."""
    name, key, value = "tflite-dynamic", "tflite_mode", "dynamic"


class TfliteFloat16(ConverterSetting):
    name, key, value = "tflite-fp16", "tflite_mode", "fp16"


class TfliteInt8(Budgeted, ConverterSetting):
    """Full integer: int8 weights and activations, int8 input/output, calibrated on representative data. The
    exporter ranks layers by sensitivity and, under an accuracy budget, keeps the most sensitive ones float."""
    name, key, value = "tflite-int8", "tflite_mode", "int8"
    needs_calibration = True

    def apply(self, model: Model, data: DataBundle) -> Model:
        model = super().apply(model, data)
        from .tflite_int8_debug import int8_with_fallback

        fallback = Int8Fallback(data, self.max_accuracy_drop, self.sensitivity, int8_with_fallback)
        return replace(model, converter=replace(model.converter, int8_fallback=fallback))


class TfjsFloat16(ConverterSetting):
    name, key, value = "tfjs-fp16", "tfjs_weights", "float16"


class TfjsUint8(ConverterSetting):
    """Affine uint8 weight storage; TF.js dequantizes to float32 when loading."""
    name, key, value = "tfjs-uint8", "tfjs_weights", "uint8"


class CoremlFloat16(ConverterSetting):
    """Core ML ML-program compute precision float16 (weights and activations), coremltools' default."""
    name, key, value = "coreml-fp16", "coreml_precision", "fp16"
    frameworks = ("torch",)
