"""Quantization that happens inside a converter (TFLiteConverter, the TF.js converter, coremltools): these
transforms only leave the converter's typed config, with the representative data where needed, on the Model;
the exporter that owns the config class reads it."""
from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from edge_pipeline.plugins import DataBundle, Model, ModelTransform, PluginConfig, QuantizeSettings
from targets.exporters.converter_configs import (
    CoremlPrecisionConfig,
    GenaiPrecision,
    Int8Search,
    LitertLmRecipe,
    TfjsWeightsConfig,
    TfliteConverterConfig,
)

from .sensitivity import Budgeted


class ConverterSetting(ModelTransform):
    frameworks: ClassVar[tuple[str, ...]] = ("tensorflow",)

    @abstractmethod
    def scheme(self) -> str:
        """The setting as the report names it (`tflite_mode = int8`)."""

    @abstractmethod
    def converter_config(self, data: DataBundle, settings: QuantizeSettings) -> PluginConfig:
        """The config its exporter reads."""

    def apply(self, model: Model, data: DataBundle, settings: QuantizeSettings) -> Model:
        quantization = {"scheme": self.scheme(),
                        "calibration_samples": int(len(data.calibration)) if self.needs_calibration else 0}
        return model.with_config(self.converter_config(data, settings)).with_provenance(quantization=quantization)


class TfliteSetting(ConverterSetting):
    """A TFLiteConverter quantization mode."""

    mode: ClassVar[str]
    distributions: ClassVar[tuple[str, ...]] = ("tensorflow-cpu",)   # the route records the converter's version

    def scheme(self) -> str:
        return f"tflite_mode = {self.mode}"

    def converter_config(self, data: DataBundle, settings: QuantizeSettings) -> TfliteConverterConfig:
        representative = data.calibration if self.needs_calibration else None
        return TfliteConverterConfig(mode=self.mode, representative=representative)


class TfliteDynamic(TfliteSetting):
    """Dynamic range: int8 weights, activations quantized on the fly."""
    name, mode = "tflite-dynamic", "dynamic"


class TfliteFloat16(TfliteSetting):
    name, mode = "tflite-fp16", "fp16"


class TfliteInt8(Budgeted, TfliteSetting):
    """Full integer: int8 weights and activations, int8 input/output, calibrated on representative data. The
    exporter ranks layers by sensitivity and, under an accuracy budget, keeps the most sensitive ones float."""
    name, mode = "tflite-int8", "int8"
    needs_calibration = True

    def converter_config(self, data: DataBundle, settings: QuantizeSettings) -> TfliteConverterConfig:
        from .tflite_int8_debug import int8_with_fallback

        search = Int8Search(data, settings.max_accuracy_drop, settings.sensitivity, int8_with_fallback)
        return TfliteConverterConfig(mode=self.mode, representative=data.calibration, int8_search=search)


class TfjsWeights(ConverterSetting):
    """TF.js weight quantization: the stored dtype."""

    dtype: ClassVar[str]
    distributions: ClassVar[tuple[str, ...]] = ("tensorflowjs",)

    def scheme(self) -> str:
        return f"tfjs_weights = {self.dtype}"

    def converter_config(self, data: DataBundle, settings: QuantizeSettings) -> TfjsWeightsConfig:
        return TfjsWeightsConfig(dtype=self.dtype)


class TfjsFloat16(TfjsWeights):
    name, dtype = "tfjs-fp16", "float16"


class TfjsUint8(TfjsWeights):
    """Affine uint8 weight storage; TF.js dequantizes to float32 when loading."""
    name, dtype = "tfjs-uint8", "uint8"


class CoremlFloat16(ConverterSetting):
    """Core ML ML-program compute precision float16 (weights and activations), coremltools' default."""
    name = "coreml-fp16"
    frameworks = ("torch",)
    distributions = ("coremltools",)

    def scheme(self) -> str:
        return "coreml_precision = fp16"

    def converter_config(self, data: DataBundle, settings: QuantizeSettings) -> CoremlPrecisionConfig:
        return CoremlPrecisionConfig(precision="fp16")


class LitertDecoderDynamicInt8(ConverterSetting):
    """A language model's LiteRT export with int8 per-channel weights and float activations quantized on the
    fly (ai-edge-quantizer's `dynamic_wi8_afp32`, LiteRT's LLM default)."""
    name = "litert-decoder-int8-dynamic"
    frameworks = ("torch",)
    distributions = ("ai-edge-quantizer",)
    recipe: ClassVar[str] = "dynamic_wi8_afp32"

    def scheme(self) -> str:
        return f"ai-edge-quantizer recipe = {self.recipe}"

    def converter_config(self, data: DataBundle, settings: QuantizeSettings) -> LitertLmRecipe:
        return LitertLmRecipe(recipe=self.recipe)


class GenaiInt4(ConverterSetting):
    """A language model's ONNX Runtime GenAI export with int4 weights in blocks of 32 (MatMulNBits) and float
    activations, the output projection float (targets/llm/genai_export.py says why)."""
    name = "genai-int4"
    frameworks = ("torch",)
    distributions = ("onnxruntime-genai",)
    group_sizes = (32, 16, 64, 128, 256)

    def scheme(self) -> str:
        return "onnxruntime-genai builder int4 (MatMulNBits; output projection float)"

    def apply(self, model: Model, data: DataBundle, settings: QuantizeSettings) -> Model:
        model = super().apply(model, data, settings)
        block = settings.group_size or self.group_sizes[0]
        return model.with_provenance(quantization={**model.provenance["quantization"], "block_size": block})

    def converter_config(self, data: DataBundle, settings: QuantizeSettings) -> GenaiPrecision:
        return GenaiPrecision(precision="int4", block_size=settings.group_size or self.group_sizes[0])
