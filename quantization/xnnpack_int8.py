"""Static int8 for ExecuTorch: XNNPACKQuantizer, symmetric per-channel weights."""
from __future__ import annotations

from typing import ClassVar

from edge_pipeline.plugins import DataBundle, Model

from .pt2e import quantize_static


class XnnpackInt8:
    name: ClassVar[str] = "xnnpack-int8"
    frameworks: ClassVar[tuple[str, ...]] = ("torch",)
    needs_calibration: ClassVar[bool] = True

    def apply(self, model: Model, data: DataBundle) -> Model:
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer, get_symmetric_quantization_config)

        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        return quantize_static(model, quantizer, data, fold_quantize=True)
