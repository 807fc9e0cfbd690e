"""Static int8 for LiteRT: litert-torch's PT2EQuantizer; the exporter passes it on as QuantConfig.
Sensitivity and fallback come from the shared PT2E mechanism."""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from edge_pipeline.plugins import Model
from targets.exporters.converter_configs import LitertQuantConfig

from .graph_patterns import fuse_hardswish, split_elementwise_partitions
from .pt2e_int8 import NodeFilter, Pt2eStaticInt8

if TYPE_CHECKING:
    from torch import fx
    from torchao.quantization.pt2e.quantizer import Quantizer


class LitertInt8(Pt2eStaticInt8):
    name: ClassVar[str] = "litert-int8"
    distributions: ClassVar[tuple[str, ...]] = ("torch", "torchao", "litert-torch")   # litert-torch's quantizer
    fold_quantize: ClassVar[bool] = False

    def quantizer(self, node_filter: NodeFilter, method: str) -> Quantizer:
        from litert_torch.quantize import pt2e_quantizer

        class FilteredQuantizer(pt2e_quantizer.PT2EQuantizer):
            """litert-torch's quantizer with a node filter (it only filters by module name or type itself)."""

            def _annotate_for_static_quantization_config(self, model: fx.GraphModule) -> fx.GraphModule:
                return self._annotate_all_static_patterns(model, self.global_config, node_filter)

        config = self.configured(pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True), method)
        return FilteredQuantizer().set_global(config)

    def prepare_graph(self, captured: fx.GraphModule) -> None:
        """A written-out hard-swish around a quantized input fails litert-torch's layout pass, and shared source
        partitions made its annotation vary from run to run (graph_patterns.py)."""
        fuse_hardswish(captured)
        split_elementwise_partitions(captured)

    def finish(self, quantized: Model, method: str) -> Model:
        """litert-torch converts the quantized graph with the same quantizer, handed over as its QuantConfig."""
        from litert_torch.quantize.quant_config import QuantConfig

        config = QuantConfig(pt2e_quantizer=self.float_quantizer(lambda node: True, method))
        return quantized.with_config(LitertQuantConfig(config))
