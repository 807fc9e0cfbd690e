"""A causal language model as edgepipe's source stage sees it: evaluation windows in, the teacher-forced logits of
every position out; beside them, each prompt and its greedy continuation by full recompute (no cache). Those are
the reference every decoder artifact is judged against (measure/generation_stage.py), so they are computed once,
from the source, like any model's reference outputs."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from edge_pipeline.errors import InputError
from edge_pipeline.measure.generation import PAD
from targets.llm.stepping import source_greedy


class DecoderReference(torch.nn.Module):
    """`lm`: a transformers causal LM; `tokenizer_json`: its tokenizer as `tokenizers` serialises it; the EOS
    ids are the union of every place the source declares one (config, generation config, tokenizer);
    `prompts`: the token ids of each prompt continued greedily (the user's, or each evaluation window's first
    quarter); `chat_template`: the Jinja template the source renders a conversation with, shipped beside every
    artifact; `prefill_lengths`: the prefill signatures a LiteRT export gets (None: its defaults)."""

    def __init__(self, lm: Any, tokenizer_json: str, eos_ids: tuple[int, ...], prompts: tuple[tuple[int, ...], ...],
                 new_tokens: int, max_context: int | None = None, chat_template: str | None = None,
                 prefill_lengths: tuple[int, ...] | None = None) -> None:
        super().__init__()
        if not prompts or not all(prompts):
            raise InputError("a language model's reference needs at least one prompt of at least one token")
        self.chat_template = chat_template
        self.prefill_lengths = prefill_lengths
        self.lm = lm.eval()
        self.context = max_context or int(lm.config.max_position_embeddings)
        self.tokenizer_json = tokenizer_json
        self.eos_ids = eos_ids
        self.prompts = prompts
        self.new_tokens = new_tokens

    def forward(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """Teacher-forced logits of every position of a batch of evaluation windows."""
        return {"logits": self.lm(input_ids=input_ids).logits.float()}

    def prompt_outputs(self) -> dict[str, np.ndarray]:
        """The references that belong to no window: each prompt (`prompt_ids`) and its greedy continuation by full
        recompute, no cache (`greedy_ids`), both padded with PAD; the source's rendering of the fixed chat
        conversation as UTF-8 codes (`chat_prompt`) where it has a template."""
        width = max(len(p) for p in self.prompts)
        prompt_ids = np.full((len(self.prompts), width), PAD, dtype=np.int64)
        greedy = np.full((len(self.prompts), self.new_tokens), PAD, dtype=np.int64)
        for row, prompt in enumerate(self.prompts):
            prompt_ids[row, :len(prompt)] = prompt
            tokens = source_greedy(self.lm, np.asarray(prompt, np.int64), self.new_tokens, self.eos_ids)
            greedy[row, :len(tokens)] = tokens
        outputs = {"prompt_ids": prompt_ids, "greedy_ids": greedy}
        if self.chat_template is not None:
            from targets.llm.chat import as_codes, source_rendering

            outputs["chat_prompt"] = as_codes(source_rendering(self.tokenizer_json, self.chat_template))
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
