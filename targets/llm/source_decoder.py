"""A causal language model as edgepipe's source stage sees it: token ids in; out, the teacher-forced logits of
every position, the greedy continuation of each window's prompt by full recompute (no cache), and the prompt's
length. Those are the reference every decoder artifact is judged against (measure/generation_stage.py), so
they are computed once, from the source, like any model's reference outputs."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from edge_pipeline.errors import InputError
from targets.llm.stepping import source_greedy

PAD = -1   # a greedy continuation shorter than `new_tokens` (it stopped at EOS) is padded with it


class DecoderReference(torch.nn.Module):
    """`lm`: a transformers causal LM; `tokenizer_json`: its tokenizer as `tokenizers` serialises it; the EOS
    ids are the union of every place the source declares one (config, generation config, tokenizer);
    `chat_template`: the Jinja template the source renders a conversation with, shipped beside every artifact;
    `prefill_lengths`: the prefill signatures a LiteRT export gets (None: its defaults)."""

    def __init__(self, lm: Any, tokenizer_json: str, eos_ids: tuple[int, ...], prompt_tokens: int,
                 new_tokens: int, max_context: int | None = None, chat_template: str | None = None,
                 prefill_lengths: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.chat_template = chat_template
        self.prefill_lengths = prefill_lengths
        self.lm = lm.eval()
        self.context = max_context or int(lm.config.max_position_embeddings)
        self.tokenizer_json = tokenizer_json
        self.eos_ids = eos_ids
        self.prompt_tokens = prompt_tokens
        self.new_tokens = new_tokens

    def forward(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.lm(input_ids=input_ids).logits.float()
        greedy = np.full((len(input_ids), self.new_tokens), PAD, dtype=np.int64)
        for row, ids in enumerate(input_ids.numpy()):
            tokens = source_greedy(self.lm, ids[:self.prompt_tokens], self.new_tokens, self.eos_ids)
            greedy[row, :len(tokens)] = tokens
        prompt = torch.full((len(input_ids),), self.prompt_tokens, dtype=torch.int64)
        outputs = {"logits": logits, "greedy_ids": torch.from_numpy(greedy), "prompt_tokens": prompt}
        if self.chat_template is not None:
            from targets.llm.chat import as_codes, source_rendering

            rendered = source_rendering(self.tokenizer_json, self.chat_template)
            outputs["chat_prompt"] = torch.from_numpy(as_codes(rendered, len(input_ids)))
        return outputs

    @property
    def max_context(self) -> int:
        """The static KV cache's length in the exported program."""
        return self.context

    @property
    def bos_id(self) -> int:
        bos = self.lm.config.bos_token_id
        return int(bos if bos is not None else self.eos_ids[0])


def declared_eos_ids(lm: Any, tokenizer: Any, eos_token: str | None) -> tuple[int, ...]:
    """The union of the EOS ids the config, the generation config and the tokenizer declare (a runner that
    knows only one of them does not stop where the model does)."""
    found: list[int] = []
    for value in (lm.config.eos_token_id, getattr(lm.generation_config, "eos_token_id", None),
                  tokenizer.token_to_id(eos_token) if eos_token else None):
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item is not None and int(item) not in found:
                found.append(int(item))
    if not found:
        raise InputError("the language model declares no end-of-sequence id (config, generation config or "
                         "tokenizer): generation could never stop")
    return tuple(found)
