"""The folder every language-model exporter writes: its program (`model.pte`, `model.litertlm`) beside
`generation.json`, what an app needs to drive it (context length, vocabulary, BOS and the union of the EOS ids
the source declares), and the tokenizer where the program does not carry its own."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from edge_pipeline.errors import InputError
from edge_pipeline.types import JsonObject

if TYPE_CHECKING:
    from edge_pipeline.plugins import Model
    from targets.llm.source_decoder import DecoderReference

GENERATION, TOKENIZER, CHAT_TEMPLATE = "generation.json", "tokenizer.json", "chat_template.jinja"


def decoder_source(model: Model, exporter: str) -> DecoderReference:
    from targets.llm.source_decoder import DecoderReference

    if not isinstance(model.module, DecoderReference):
        raise InputError(f"the {exporter} exporter takes a language model source, got {type(model.module).__name__}")
    return model.module


def write_generation(source: DecoderReference, dest: Path, tokenizer: bool, **extra: object) -> JsonObject:
    """generation.json (and tokenizer.json when `tokenizer`, and the source's chat template where it has one) into
    `dest`; returns what generation.json holds."""
    generation: JsonObject = {"max_context": source.max_context, "vocab_size": int(source.lm.config.vocab_size),
                              "bos_id": source.bos_id, "eos_ids": list(source.eos_ids), **extra}
    (dest / GENERATION).write_text(json.dumps(generation, indent=2, sort_keys=True) + "\n")
    if tokenizer:
        (dest / TOKENIZER).write_text(source.tokenizer_json)
    if source.chat_template is not None:
        (dest / CHAT_TEMPLATE).write_text(source.chat_template)
    return generation
