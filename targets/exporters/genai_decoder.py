"""A language model to ONNX Runtime GenAI with its own model builder (targets/llm/genai_export.py). The artifact
is a folder GenAI opens as it is: `model.onnx` and its weights, `genai_config.json`, the tokenizer files, and
`generation.json`."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from edge_pipeline.plugins import Model
from edge_pipeline.types import JsonObject
from targets.exporters.decoder_base import DecoderExporter
from targets.llm.decoder_folder import write_generation

from .converter_configs import GenaiPrecision


class GenaiDecoderExporter(DecoderExporter):
    name: ClassVar[str] = "ort-genai"
    format: ClassVar[str] = "onnx"
    suffix: ClassVar[str] = "-genai"
    precisions: ClassVar[dict[str, str | None]] = {"fp32": None, "int4": "genai-int4"}
    runner: ClassVar[str | None] = "ort-genai"
    distributions: ClassVar[tuple[str, ...]] = ("torch", "transformers", "onnxruntime-genai", "onnxruntime", "onnx")

    def export(self, model: Model, dest: Path) -> JsonObject:
        from targets.llm.genai_export import export_genai

        source = self.source(model)
        config = model.config(GenaiPrecision)
        precision = config.precision if config is not None else "fp32"
        export_genai(source, dest, precision, config.block_size if config is not None else None)
        generation = write_generation(source, dest, tokenizer=False)
        quantization = model.provenance.get("quantization")
        return {"converter": "onnxruntime-genai model builder", "kv_cache": "past_key_values in, present out",
                "builder_precision": precision, **generation, "files": sorted(p.name for p in dest.iterdir()),
                **({"quantization": quantization} if quantization else {})}
