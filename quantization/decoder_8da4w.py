"""8da4w for a language model's `.pte` (ExecuTorch's LLM recipe): int4 weights in groups of 32 with int8
dynamic activations on the decoder's linear layers, the output projection kept at 8-bit weights
(targets/llm/pte_export.py says why)."""
from __future__ import annotations

import copy
from dataclasses import replace
from typing import ClassVar

from edge_pipeline.plugins import DataBundle, Model, ModelTransform, QuantizeSettings


class Decoder8da4w(ModelTransform):
    name: ClassVar[str] = "decoder-8da4w"
    frameworks: ClassVar[tuple[str, ...]] = ("torch",)
    needs_calibration: ClassVar[bool] = False
    distributions: ClassVar[tuple[str, ...]] = ("torchao",)

    def apply(self, model: Model, data: DataBundle, settings: QuantizeSettings) -> Model:
        from targets.llm.pte_export import GROUP_SIZE, quantize_8da4w

        module = copy.deepcopy(model.module)
        left_float = quantize_8da4w(module.lm)
        notes = {"scheme": f"8da4w: int4 weights (group {GROUP_SIZE}), int8 dynamic activations",
                 "output_projection": "int8 weights (per channel), int8 dynamic activations",
                 "layers_float": left_float}
        return replace(model, module=module).with_provenance(quantization=notes)
