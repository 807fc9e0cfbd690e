"""Settings a quantization transform leaves for an exporter whose converter quantizes by itself (TFLiteConverter,
the TF.js converter, coremltools, litert-torch). Each exporter owns its config class and asks the model for it
(`model.config(TfliteConverterConfig)`); the core passes them through without looking inside."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edge_pipeline.plugins import DataBundle, PluginConfig
from edge_pipeline.tensors import Tensors
from edge_pipeline.types import JsonObject


@dataclass(frozen=True)
class Int8Search:
    """What TFLiteConverter's full-int8 export needs to rank layers and keep sensitive ones float: the
    quantizer's own search, handed over so that exporters never import quantizers.
    `improve(converter, flatbuffer, keras model, data, budget, rank) -> (flatbuffer, notes)`."""

    data: DataBundle
    budget: float | None     # the accuracy budget left for this step (None: rank only)
    rank: str                # the `[quantization] sensitivity` mode
    improve: Callable[[object, bytes, object, DataBundle, float | None, str], tuple[bytes, JsonObject]]


@dataclass(frozen=True)
class TfliteConverterConfig(PluginConfig):
    """TFLiteConverter's quantization mode and its calibration samples."""

    mode: str = "fp32"                        # fp32 | dynamic | fp16 | int8
    representative: Tensors | None = None     # int8 calibration samples
    int8_search: Int8Search | None = None     # int8 sensitivity ranking / float fallback


@dataclass(frozen=True)
class TfjsWeightsConfig(PluginConfig):
    """TF.js weight quantization: the stored dtype (float16 | uint8); TF.js dequantizes when loading."""

    dtype: str


@dataclass(frozen=True)
class CoremlPrecisionConfig(PluginConfig):
    """Core ML ML-program compute precision (fp16)."""

    precision: str = "fp16"


@dataclass(frozen=True)
class LitertQuantConfig(PluginConfig):
    """litert-torch's QuantConfig for a PT2E-quantized model (its own object, passed to the converter as is)."""

    quant_config: object


@dataclass(frozen=True)
class LitertLmRecipe(PluginConfig):
    """The ai-edge-quantizer recipe litert-torch's LLM export applies (`dynamic_wi8_afp32`, ...)."""

    recipe: str


@dataclass(frozen=True)
class GenaiPrecision(PluginConfig):
    """The onnxruntime-genai model builder's precision (`int4`: MatMulNBits weight-only, `block_size` weights per
    scale)."""

    precision: str
    block_size: int = 32
