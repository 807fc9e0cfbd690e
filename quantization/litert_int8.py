"""Static int8 for LiteRT: litert-torch's PT2EQuantizer; the exporter passes it on as QuantConfig."""
from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from edge_pipeline.plugins import DataBundle, Model

from .pt2e import quantize_static


class LitertInt8:
    name: ClassVar[str] = "litert-int8"
    frameworks: ClassVar[tuple[str, ...]] = ("torch",)
    needs_calibration: ClassVar[bool] = True

    def apply(self, model: Model, data: DataBundle) -> Model:
        from litert_torch.quantize import pt2e_quantizer
        from litert_torch.quantize.quant_config import QuantConfig

        quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
            pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True))
        quantized = quantize_static(model, quantizer, data, fold_quantize=False)
        return replace(quantized, extras={**quantized.extras, "litert_quant_config": QuantConfig(pt2e_quantizer=quantizer)})
