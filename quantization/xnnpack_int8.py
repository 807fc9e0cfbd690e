"""Static int8 for ExecuTorch: XNNPACKQuantizer, symmetric per-channel weights (sensitivity and fallback come
from the shared PT2E mechanism)."""
from __future__ import annotations

from typing import Any, ClassVar

from .pt2e_int8 import NodeFilter, Pt2eStaticInt8


class XnnpackInt8(Pt2eStaticInt8):
    name: ClassVar[str] = "xnnpack-int8"

    def quantizer(self, node_filter: NodeFilter) -> Any:
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer, get_symmetric_quantization_config)

        config = self.with_calibration(get_symmetric_quantization_config(is_per_channel=True))
        return XNNPACKQuantizer().set_global(config).set_filter_function(node_filter)
