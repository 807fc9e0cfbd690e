"""A language-model source written back as the Hugging Face folder vendor LLM exporters read (litert-torch's
`export_hf` loads a path, not a module): safetensors weights, the config, a generation config whose EOS ids are
the union the source declares (so the bundle's stop tokens are edgepipe's), and the tokenizer as `tokenizers`
serialises it with its BOS/EOS named."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from targets.llm.source_decoder import DecoderReference


def write_hf_folder(source: DecoderReference, dest: Path) -> Path:
    """`dest` holding the source's weights, config, generation config and tokenizer files; returns `dest`."""
    import copy

    dest.mkdir(parents=True, exist_ok=True)
    lm = source.lm
    generation = copy.deepcopy(lm.generation_config)
    generation.eos_token_id = list(source.eos_ids)
    generation.bos_token_id = source.bos_id
    lm.save_pretrained(dest, safe_serialization=True)
    generation.save_pretrained(dest)
    _write_tokenizer(source, dest)
    return dest


def _write_tokenizer(source: DecoderReference, dest: Path) -> None:
    """The tokenizer with every special token named, none left to a default: transformers picks the tokenizer
    class from the architecture (a Qwen2 folder loads as Qwen2Tokenizer), and such a class adds its own pad and
    unknown tokens where none is named, ids the model's embedding does not have."""
    import json

    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tokenizer = Tokenizer.from_str(source.tokenizer_json)
    eos = tokenizer.id_to_token(source.eos_ids[0])
    unknown = getattr(tokenizer.model, "unk_token", None)
    named = {"bos_token": tokenizer.id_to_token(source.bos_id), "eos_token": eos, "pad_token": eos,
             "unk_token": unknown if unknown is not None and tokenizer.token_to_id(unknown) is not None else None}
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer)
    if source.chat_template is not None:
        fast.chat_template = source.chat_template
    fast.save_pretrained(dest)
    config_file = dest / "tokenizer_config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), **named}, indent=2) + "\n")
    loaded = AutoTokenizer.from_pretrained(dest)
    expected = tokenizer.get_vocab_size(with_added_tokens=True)
    if len(loaded) != expected:
        from edge_pipeline.errors import Unsupported

        raise Unsupported(f"the tokenizer reloads as {type(loaded).__name__} with {len(loaded)} tokens, not "
                          f"{expected}: a vendor export would give the model ids its embedding does not have")
