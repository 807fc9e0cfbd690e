"""Reads a `.litertlm` bundle's table of sections (litert-lm-builder's own header reader): the decoder's `.tflite`
exactly as the bundle carries it, so what edgepipe steps is byte for byte what the engine loads, and the token
strings its LLM metadata names (start, stop, pad), which the bundle's tokenizer must know. A file that is not a
bundle, or whose sections point outside it, is refused by name."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from edge_pipeline.errors import InputError

DECODER_MODEL_TYPES = ("tf_lite_prefill_decode",)


@dataclass(frozen=True)
class Section:
    kind: int                 # litert-lm-builder's AnySectionDataType
    model_type: str | None    # a TFLite section's role (tf_lite_prefill_decode, ...)
    begin: int
    end: int


def _sections(bundle: Path) -> list[Section]:
    from litert_lm_builder.litertlm_peek import get_model_type, read_litertlm_header

    size = bundle.stat().st_size
    try:
        header = read_litertlm_header(str(bundle), io.StringIO())
        table = header.SectionMetadata()
        count = table.ObjectsLength() if table is not None else 0
    except Exception as exc:
        raise InputError(f"{bundle} is not a LiteRT-LM bundle: {exc}") from exc
    found = []
    for index in range(count):
        section = table.Objects(index)
        if section is None:
            continue
        begin, end = section.BeginOffset(), section.EndOffset()
        if not 0 <= begin < end <= size:
            raise InputError(f"{bundle}: section {index} spans bytes {begin}-{end}, outside the file's {size}")
        found.append(Section(section.DataType(), get_model_type(section), begin, end))
    return found


def _read(bundle: Path, section: Section) -> bytes:
    with bundle.open("rb") as stream:
        stream.seek(section.begin)
        return stream.read(section.end - section.begin)


def decoder_tflite(bundle: Path) -> bytes:
    """The prefill/decode `.tflite` inside `bundle`."""
    from litert_lm_builder import litertlm_header_schema_py_generated as schema

    models = [s for s in _sections(bundle) if s.kind == schema.AnySectionDataType.TFLiteModel]
    chosen = [s for s in models if s.model_type in DECODER_MODEL_TYPES] or (models if len(models) == 1 else [])
    if not chosen:
        kinds = ", ".join(str(s.model_type) for s in models) or "none"
        raise InputError(f"{bundle} holds no prefill/decode .tflite (its TFLite sections: {kinds})")
    return _read(bundle, chosen[0])


def metadata_token_strings(bundle: Path) -> list[str]:
    """The single tokens the bundle's LLM metadata names by their text (start and pad tokens; stop strings may be
    sequences of tokens, which the engine matches as such)."""
    from litert_lm_builder import litertlm_header_schema_py_generated as schema
    from litert_lm_builder.runtime.proto import llm_metadata_pb2

    named: list[str] = []
    for section in _sections(bundle):
        if section.kind != schema.AnySectionDataType.LlmMetadataProto:
            continue
        metadata = llm_metadata_pb2.LlmMetadata.FromString(_read(bundle, section))
        tokens = [metadata.start_token, metadata.pad_token]
        named += [t.token_str for t in tokens if t.WhichOneof("token_union") == "token_str"]
    return named
