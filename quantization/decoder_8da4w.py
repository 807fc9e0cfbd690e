"""8da4w for a language model's `.pte` (ExecuTorch's LLM recipe): int4 weights in groups with int8 dynamic
activations on the decoder's linear layers, the output projection kept at 8-bit weights (targets/llm/pte_export.py
says why).

When the artifact can be shipped and run during the search, the variants below are tried in order, each on the
very `.pte` that would ship, until one keeps the source's meaning by the 8da4w thresholds (token agreement and
perplexity increase on the evaluation windows): torchao's default min-max scales, then HQQ's scale search, then
HQQ scales with GPTQ's calibrated rounding (quantization/gptq.py), then that with the first and last decoder
blocks at 8-bit weights (where quantization error enters and leaves the residual stream). Groups stay at 32:
XNNPACK delegates no smaller. The first variant that holds ships; every variant tried is in the report
(`quantization.variants`)."""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from edge_pipeline.plugins import DataBundle, Model, ModelTransform, QuantizeSettings, Ship
from edge_pipeline.types import JsonObject

if TYPE_CHECKING:
    import numpy as np

    from targets.llm.pte_export import Refine


@dataclass(frozen=True)
class Variant:
    name: str
    group_size: int
    algorithm: str               # torchao's IntxChooseQParamsAlgorithm value
    edge_blocks_8bit: bool = False
    gptq: bool = False           # integers re-picked by GPTQ over the calibration windows (quantization/gptq.py)


VARIANTS = (Variant("int4 g32, min-max scales (torchao default)", 32, "affine"),
            Variant("int4 g32, HQQ scales", 32, "hqq_scale_only"),
            Variant("int4 g32, HQQ scales, GPTQ rounding (calibrated)", 32, "hqq_scale_only", gptq=True),
            Variant("int4 g32, HQQ scales, GPTQ rounding, first and last blocks 8-bit", 32, "hqq_scale_only", True,
                    gptq=True))


MIN_BLOCKS_FOR_EDGES = 4   # below this, 8-bit first and last blocks leave too few at 4 bits to call it 8da4w


class Decoder8da4w(ModelTransform):
    name: ClassVar[str] = "decoder-8da4w"
    frameworks: ClassVar[tuple[str, ...]] = ("torch",)
    needs_calibration: ClassVar[bool] = False
    distributions: ClassVar[tuple[str, ...]] = ("torchao",)
    group_sizes: ClassVar[tuple[int, ...]] = (32, 64, 128, 256)   # XNNPACK delegates no group under 32

    def apply(self, model: Model, data: DataBundle, settings: QuantizeSettings) -> Model:
        return quantized(model, variants(settings)[0], [])

    def apply_shipped(self, model: Model, data: DataBundle, settings: QuantizeSettings, ship: Ship | None) -> Model:
        if ship is None:
            return self.apply(model, data, settings)
        from edge_pipeline.measure.generation import compare_windows
        from edge_pipeline.precision import Precision

        limits = Precision.parse("8da4w").thresholds
        windows = list(data.eval_inputs.arrays[0])
        reference = source_logits(model, data)
        tried: list[JsonObject] = []
        candidates = []
        blocks = len(getattr(model.module.lm.model, "layers", ()))
        calibration = list(data.calibration.arrays[0])
        hessians: dict[str, Any] | None = None         # GPTQ's, taken once over the float model
        for variant in variants(settings):
            if variant.edge_blocks_8bit and blocks < MIN_BLOCKS_FOR_EDGES:
                tried.append({"variant": variant.name, "skipped": f"{blocks} decoder blocks: with its first and last "
                              f"at 8 bits too few would stay at 4 bits"})
                continue
            if variant.gptq and not calibration:
                tried.append({"variant": variant.name, "skipped": "no calibration windows (the evaluation text has "
                              "no text beyond its evaluation windows)"})
                continue
            try:
                if variant.gptq and hessians is None:
                    hessians = layer_hessians(model.module.lm, calibration)
                candidate = quantized(model, variant, tried, hessians)
                logits = ship(candidate)(data.eval_inputs)[0]
                figures, _ = compare_windows(reference, list(logits), windows)
            except Exception as exc:     # a variant the converter or runtime refuses is out, and reported so
                tried.append({"variant": variant.name, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
                continue
            holds = (figures.agreement >= limits.min_token_agreement
                     and figures.perplexity_increase_pct <= limits.max_ppl_increase_pct)
            tried.append({"variant": variant.name, "token_agreement": round(figures.agreement, 6),
                          "perplexity_increase_pct": round(figures.perplexity_increase_pct, 3), "holds": holds})
            candidates.append((figures.agreement, candidate))
            if holds:
                return candidate
        best = max(candidates, key=lambda pair: pair[0])[1] if candidates \
            else quantized(model, variants(settings)[0], tried)
        return best      # validation refuses it, naming its figures; every variant tried is in its notes


def variants(settings: QuantizeSettings) -> tuple[Variant, ...]:
    """The variants at `[quantization] group-size` where one is set."""
    size = settings.group_size
    return VARIANTS if size is None else tuple(replace(v, name=v.name.replace("g32", f"g{size}"), group_size=size)
                                                for v in VARIANTS)


def quantized(model: Model, variant: Variant, tried: list[JsonObject],
              hessians: dict[str, Any] | None = None) -> Model:
    """The model with `variant` applied; `tried` (shared, filled as the search goes) lands in its notes;
    `hessians`: each layer's input Hessian (layer_hessians), which a GPTQ variant needs."""
    from targets.llm.pte_export import quantize_8da4w

    module = copy.deepcopy(model.module)
    blocks = len(getattr(module.lm.model, "layers", ()))
    edges = tuple(f"model.layers.{i}." for i in sorted({0, blocks - 1})) if variant.edge_blocks_8bit and blocks \
        else ()
    refine = gptq_refine(variant.group_size, hessians or {}) if variant.gptq else None
    left_float = quantize_8da4w(module.lm, variant.group_size, variant.algorithm, edges, refine)
    notes: JsonObject = {"scheme": f"8da4w: int4 weights ({variant.name}), int8 dynamic activations",
                         "output_projection": "int8 weights (per channel), int8 dynamic activations",
                         "layers_float": left_float, "variants": tried}   # type: ignore[dict-item]
    return replace(model, module=module).with_provenance(quantization=notes)


def layer_hessians(lm: Any, calibration: list[np.ndarray]) -> dict[str, Any]:
    """The input Hessian of each of the float decoder's linear layers but the output projection (kept 8-bit)."""
    import torch

    from quantization.gptq import input_hessians

    head = lm.get_output_embeddings()
    names = [n for n, m in lm.named_modules() if isinstance(m, torch.nn.Linear) and m is not head]
    return input_hessians(lm, names, calibration)


def gptq_refine(group_size: int, hessians: dict[str, Any]) -> Refine:
    """A `refine` for quantize_8da4w: each int4 layer's integers re-picked by GPTQ on torchao's grid."""
    from quantization.gptq import gptq_round

    def refine(name: str, weight: Any, quantized: Any) -> None:
        if name not in hessians:
            raise ValueError(f"no calibration input reached layer {name}")
        integers = gptq_round(weight, hessians[name], quantized.scale, quantized.zero_point, group_size, -8, 7)
        quantized.qdata.copy_(integers)
    return refine


def source_logits(model: Model, data: DataBundle) -> list:
    """The float source's teacher-forced logits of every evaluation window, one window per call, as the source
    stage computed the reference."""
    from targets.llm.stepping import source_logits as window_logits

    return [window_logits(model.module.lm, window) for window in data.eval_inputs.arrays[0]]
