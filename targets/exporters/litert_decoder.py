"""A language model to LiteRT the way LiteRT's LLM path does it (targets/llm/litert_export.py): a `.tflite` with
`prefill_<N>` and `decode` signatures and the KV cache as their inputs and outputs, packed with the tokenizer and
stop tokens into a `.litertlm` bundle LiteRT-LM's engine runs. The artifact is a folder: `model.litertlm` and
`generation.json` (the tokenizer travels inside the bundle)."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from edge_pipeline.plugins import Model
from edge_pipeline.types import JsonObject
from targets.exporters.decoder_base import DecoderExporter
from targets.llm.decoder_folder import write_generation

from .converter_configs import LitertLmRecipe

BUNDLE = "model.litertlm"


class LitertDecoderExporter(DecoderExporter):
    name: ClassVar[str] = "litert-decoder"
    format: ClassVar[str] = "tflite"
    suffix: ClassVar[str] = "-litertlm"
    precisions: ClassVar[dict[str, str | None]] = {"fp32": None, "int8-dynamic": "litert-decoder-int8-dynamic"}
    runner: ClassVar[str | None] = "litert-decoder"
    distributions: ClassVar[tuple[str, ...]] = ("torch", "transformers", "litert-torch", "ai-edge-quantizer",
                                                "litert-lm-builder")

    def export(self, model: Model, dest: Path) -> JsonObject:
        from targets.llm.litert_export import FLOAT, export_litert_decoder

        source = self.source(model)
        config = model.config(LitertLmRecipe)
        recipe = config.recipe if config is not None else FLOAT
        dest.mkdir(parents=True, exist_ok=True)
        exported = export_litert_decoder(source, dest / BUNDLE, recipe)
        lengths = exported.prefill_lengths
        generation = write_generation(source, dest, tokenizer=False, prefill_lengths=lengths)
        return {"converter": "litert-torch export_hf -> LiteRT-LM bundle", "kv_cache": "static, signature inputs",
                "signatures": [f"prefill_{n}" for n in lengths] + ["decode"], "llm_metadata": exported.llm_metadata,
                "quantization_recipe": recipe, **generation, "files": sorted(p.name for p in dest.iterdir())}
