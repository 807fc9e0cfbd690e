"""A decoder to LiteRT the way LiteRT's own LLM path does it: litert-torch's `export_hf` converts the model into
one `.tflite` with a `prefill_<N>` signature per prefill length and a `decode` signature, the KV cache passed in
and out of each, quantizes it with an ai-edge-quantizer recipe, and packs it with the tokenizer and the LLM
metadata (start and stop tokens, sampler) into a `.litertlm` bundle that LiteRT-LM's engine runs.

The bundle is the artifact: the `.tflite` inside is what edgepipe steps and times (targets/llm/litert_stepping.py),
and LiteRT-LM's engine runs the bundle itself."""
from __future__ import annotations

import hashlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge_pipeline.errors import Unsupported

if TYPE_CHECKING:
    from targets.llm.source_decoder import DecoderReference

PREFILL_LENGTHS = (32, 128, 512)   # LiteRT-LM's usual signatures; those shorter than the context are exported
FLOAT = "none"                     # export_hf's name for "no quantization recipe"
GENERIC = "generic"                # LiteRT-LM's model type for metadata no architecture builder wrote
EPOCH = "1980-01-01T00:00:00+00:00"  # the bundle's creation time, as zip archives date reproducible builds


def prefill_lengths(max_context: int) -> list[int]:
    """The prefill signatures a context holds (at least one: a short context gets one of half its length)."""
    return [n for n in PREFILL_LENGTHS if n < max_context] or [max(1, max_context // 2)]


@dataclass(frozen=True)
class LitertExport:
    prefill_lengths: list[int]
    llm_metadata: str          # whose metadata builder wrote the bundle's LLM metadata, and why


def export_litert_decoder(source: DecoderReference, dest: Path, recipe: str = FLOAT) -> LitertExport:
    """`dest` (a `.litertlm` file) from the source, with the ai-edge-quantizer `recipe`. The bundle's LLM metadata
    comes from the architecture's own builder (a Qwen bundle names Qwen's pad token); where it names a token this
    tokenizer does not have, the engine would fail on the first prompt, so the bundle is built again with the
    generic metadata, and the report says so. Temporary files stay in a folder of their own and are removed."""
    from tokenizers import Tokenizer

    from targets.llm.hf_folder import write_hf_folder
    from targets.llm.litertlm_file import metadata_token_strings

    lengths = list(source.prefill_lengths or prefill_lengths(source.max_context))
    with tempfile.TemporaryDirectory(prefix="edgepipe-litert-lm-") as work:
        folder = write_hf_folder(source, Path(work) / "source")
        key = f"{_digest(folder)}:{recipe}:{lengths}"
        bundle = _export(folder, Path(work) / "out", source.max_context, recipe, lengths, key, None)
        tokenizer = Tokenizer.from_str(source.tokenizer_json)
        unknown = [t for t in metadata_token_strings(bundle) if tokenizer.token_to_id(t) is None]
        note = f"{source.lm.config.model_type}'s own"
        if unknown:
            bundle = _export(folder, Path(work) / "generic", source.max_context, recipe, lengths, key, GENERIC)
            note = (f"generic: {source.lm.config.model_type}'s names {', '.join(map(repr, unknown))}, which this "
                    f"tokenizer does not have")
        shutil.move(str(bundle), dest)
    return LitertExport(lengths, note)


def _export(folder: Path, out: Path, context: int, recipe: str, lengths: list[int], key: str,
            model_type: str | None) -> Path:
    from litert_torch.generative.export_hf import export as export_hf

    try:
        with _reproducible_bundle(key):
            export_hf.export(model=str(folder), output_dir=str(out), prefill_lengths=lengths, cache_length=context,
                             quantization_recipe=recipe, bundle_litert_lm=True,
                             litert_lm_model_type_override=model_type)
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Unsupported(f"litert-torch's LLM export failed: {message}") from exc
    bundles = sorted(out.glob("*.litertlm"))
    if not bundles:
        raise Unsupported("litert-torch's LLM export wrote no .litertlm bundle")
    return bundles[0]


def _digest(folder: Path) -> str:
    hashed = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        hashed.update(path.name.encode())
        hashed.update(path.read_bytes())
    return hashed.hexdigest()


@contextmanager
def _reproducible_bundle(key: str) -> Iterator[None]:
    """The builder stamps each bundle with a random uuid and the clock; here the uuid is derived from the inputs
    and the time is fixed, so the same source and recipe give the same bytes."""
    from litert_lm_builder import litertlm_builder as builder

    def stamped(metadata: list) -> list:
        kept = [m for m in metadata if m.key not in ("uuid", "creation_timestamp")]
        return kept + [builder.Metadata(key="uuid", value=str(uuid.uuid5(uuid.NAMESPACE_OID, key)),
                                        dtype=builder.DType.STRING),
                       builder.Metadata(key="creation_timestamp", value=EPOCH, dtype=builder.DType.STRING)]

    original = builder.populate_system_metadata
    builder.populate_system_metadata = stamped
    try:
        yield
    finally:
        builder.populate_system_metadata = original
