"""Writes a Llama-architecture transformers model and its byte-level BPE tokenizer as one GGUF file, laid out as
llama.cpp's converter lays it out (its tensor names, Q/K rows permuted for its rotary kernel, a `gpt2` tokenizer
with merges and control tokens), with the `gguf` package's own writer and quantizer. Tests need a GGUF file and
none may be downloaded."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def _permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's rotary layout: each head's two rotary halves interleaved."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def write_gguf(lm: Any, tokenizer: Any, path: Path, quantized: bool = True, chat_template: str | None = None) -> Path:
    """`lm` (LlamaForCausalLM) and `tokenizer` (tokenizers.Tokenizer, byte-level BPE) as `path`; matrices in Q8_0
    when `quantized`, norms and everything else in F32."""
    import gguf

    config = lm.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("edgepipe test llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    model = json.loads(tokenizer.to_str())["model"]
    tokens = [token for token, _ in sorted(tokenizer.get_vocab(with_added_tokens=True).items(), key=lambda t: t[1])]
    specials = {t.content for t in tokenizer.get_added_tokens_decoder().values() if t.special}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if token in specials else 1 for token in tokens])
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in model["merges"]])
    writer.add_bos_token_id(config.bos_token_id)
    writer.add_eos_token_id(config.eos_token_id)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    for name, tensor in lm.state_dict().items():
        data = tensor.float().numpy()
        if name.endswith("q_proj.weight"):
            data = _permute(data, config.num_attention_heads)
        elif name.endswith("k_proj.weight"):
            data = _permute(data, config.num_key_value_heads)
        target = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if quantized and data.ndim == 2:
            kind = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(target, gguf.quants.quantize(data, kind), raw_dtype=kind)
        else:
            writer.add_tensor(target, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
