"""A language model to ExecuTorch the way ExecuTorch's LLM path does it (targets/llm/pte_export.py): a static KV
cache inside the program, XNNPACK, and the metadata methods its LLM runner reads. The artifact is a folder an
app ships as it is: `model.pte`, the tokenizer (`tokenizer.json`) and `generation.json` (context length, BOS
and the union of the EOS ids the source declares)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

from edge_pipeline.errors import InputError
from edge_pipeline.plugins import Exporter, Model
from edge_pipeline.types import TEXT_GENERATION, JsonObject

PROGRAM, TOKENIZER, GENERATION = "model.pte", "tokenizer.json", "generation.json"


class PteDecoderExporter(Exporter):
    name: ClassVar[str] = "pte-decoder"
    format: ClassVar[str] = "pte"
    suffix: ClassVar[str] = "-llm"
    is_directory: ClassVar[bool] = True
    frameworks: ClassVar[tuple[str, ...]] = ("torch",)
    tasks: ClassVar[tuple[str, ...]] = (TEXT_GENERATION,)
    precisions: ClassVar[dict[str, str | None]] = {"fp32": None, "8da4w": "decoder-8da4w"}
    runner: ClassVar[str | None] = "executorch-decoder"
    distributions: ClassVar[tuple[str, ...]] = ("torch", "executorch", "transformers", "torchao")

    def export(self, model: Model, dest: Path) -> JsonObject:
        from targets.llm.pte_export import DecoderMetadata, export_decoder
        from targets.llm.source_decoder import DecoderReference

        source = model.module
        if not isinstance(source, DecoderReference):
            raise InputError(f"the {self.name} exporter takes a language model source, got {type(source).__name__}")
        metadata = DecoderMetadata(source.max_context, int(source.lm.config.vocab_size), source.bos_id,
                                   source.eos_ids)
        dest.mkdir(parents=True, exist_ok=True)
        export_decoder(source.lm, dest / PROGRAM, metadata)
        (dest / TOKENIZER).write_text(source.tokenizer_json)
        generation: JsonObject = {"max_context": metadata.max_context, "vocab_size": metadata.vocab_size,
                                  "bos_id": metadata.bos_id, "eos_ids": list(metadata.eos_ids)}
        (dest / GENERATION).write_text(json.dumps(generation, indent=2, sort_keys=True) + "\n")
        quantization = model.provenance.get("quantization")
        return {"converter": "transformers TorchExportableModuleForDecoderOnlyLM -> ExecuTorch XNNPACK",
                "kv_cache": "static", **generation, "files": [PROGRAM, TOKENIZER, GENERATION],
                **({"quantization": quantization} if quantization else {})}
