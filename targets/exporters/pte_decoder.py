"""A language model to ExecuTorch the way ExecuTorch's LLM path does it (targets/llm/pte_export.py): a static KV
cache inside the program, XNNPACK, and the metadata methods its LLM runner reads. The artifact is a folder an
app ships as it is: `model.pte`, the tokenizer (`tokenizer.json`) and `generation.json` (context length, BOS
and the union of the EOS ids the source declares)."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from edge_pipeline.plugins import Model
from edge_pipeline.types import JsonObject
from targets.exporters.decoder_base import DecoderExporter
from targets.llm.decoder_folder import write_generation

PROGRAM = "model.pte"


class PteDecoderExporter(DecoderExporter):
    name: ClassVar[str] = "pte-decoder"
    format: ClassVar[str] = "pte"
    suffix: ClassVar[str] = "-llm"
    precisions: ClassVar[dict[str, str | None]] = {"fp32": None, "8da4w": "decoder-8da4w"}
    runner: ClassVar[str | None] = "executorch-decoder"
    distributions: ClassVar[tuple[str, ...]] = ("torch", "executorch", "transformers", "torchao")

    def export(self, model: Model, dest: Path) -> JsonObject:
        from targets.llm.pte_export import DecoderMetadata, export_decoder

        source = self.source(model)
        metadata = DecoderMetadata(source.max_context, int(source.lm.config.vocab_size), source.bos_id,
                                   source.eos_ids)
        dest.mkdir(parents=True, exist_ok=True)
        export_decoder(source.lm, dest / PROGRAM, metadata)
        generation = write_generation(source, dest, tokenizer=True)
        quantization = model.provenance.get("quantization")
        return {"converter": "transformers TorchExportableModuleForDecoderOnlyLM -> ExecuTorch XNNPACK",
                "kv_cache": "static", **generation, "files": sorted(p.name for p in dest.iterdir()),
                **({"quantization": quantization} if quantization else {})}
