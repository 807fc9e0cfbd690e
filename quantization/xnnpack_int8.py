"""Static int8 for ExecuTorch: XNNPACKQuantizer, symmetric per-channel weights (sensitivity and fallback come
from the shared PT2E mechanism)."""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from .pt2e_int8 import NodeFilter, Pt2eStaticInt8

if TYPE_CHECKING:
    from torchao.quantization.pt2e.quantizer import Quantizer


class XnnpackInt8(Pt2eStaticInt8):
    name: ClassVar[str] = "xnnpack-int8"
    distributions: ClassVar[tuple[str, ...]] = ("torch", "torchao", "executorch")   # its quantizer is ExecuTorch's

    def quantizer(self, node_filter: NodeFilter, method: str) -> Quantizer:
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )

        config = self.configured(get_symmetric_quantization_config(is_per_channel=True), method)
        return XNNPACKQuantizer().set_global(config).set_filter_function(node_filter)
