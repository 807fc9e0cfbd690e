"""int4 weights with int8 dynamic activations (8da4w) for ExecuTorch, with torchao.

torchao's `Int8DynamicActivationIntxWeightConfig` on Linear layers whose input width is a multiple of the group
size (XNNPACK's blockwise kernels need it); other layers stay float and are listed. The tensor subclasses are
unwrapped before export: without `unwrap_tensor_subclass` torchao's quantized linears lower to silently wrong
XNNPACK programs (STACK.md), and validation against the source would then fail the build.
(Weight-only int8 is not offered for `.pte`: its `torchao::dequantize_affine` has no ExecuTorch kernel.)
"""
from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from edge_pipeline.errors import Unsupported
from edge_pipeline.plugins import DataBundle, Model, ModelTransform, QuantizeSettings

GROUP_SIZE = 32


class Torchao8da4w(ModelTransform):
    name: ClassVar[str] = "torchao-8da4w"
    frameworks: ClassVar[tuple[str, ...]] = ("torch",)
    needs_calibration: ClassVar[bool] = False
    distributions: ClassVar[tuple[str, ...]] = ("torchao",)

    def apply(self, model: Model, data: DataBundle, settings: QuantizeSettings) -> Model:
        import copy

        import torch
        from torchao.quantization import Int8DynamicActivationIntxWeightConfig, quantize_
        from torchao.quantization.granularity import PerGroup
        from torchao.utils import unwrap_tensor_subclass

        module = copy.deepcopy(model.module)
        linears = {name: m for name, m in module.named_modules() if isinstance(m, torch.nn.Linear)}
        chosen = sorted(name for name, m in linears.items() if m.in_features % GROUP_SIZE == 0)
        if not chosen:
            raise Unsupported(f"int4 (8da4w) quantizes Linear layers whose input width is a multiple of {GROUP_SIZE}; "
                              f"this model has none (Linear layers: {', '.join(sorted(linears)) or 'none'})")
        quantize_(module, Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4,
                                                                  weight_granularity=PerGroup(GROUP_SIZE)),
                  filter_fn=lambda m, fqn: fqn in chosen)
        unwrap_tensor_subclass(module)
        quantization = {"scheme": f"8da4w: int4 weights (group {GROUP_SIZE}), int8 dynamic activations",
                        "layers_quantized": chosen, "layers_float": sorted(set(linears) - set(chosen)),
                        "note": "convolutions stay float in this mode"}
        return replace(model, module=module).with_provenance(quantization=quantization)
