"""The exported decoder run in ExecuTorch's runtime, one call at a time, as a phone app's loop would: prefill a
prompt, then decode token by token through the program's own KV cache (targets/llm/pte_program.py). Teacher-forced
logits, greedy continuations and their timings all come from here; and the source's own references."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.plugins import DecoderSession, GreedyRun, LoopRun
from targets.llm.pte_program import PteProgram


class PteDecoder(DecoderSession):
    """One loaded program (targets/llm/pte_program.py, the code a board runs too). With a tokenizer beside it,
    ExecuTorch's own LLM runner drives the same file (`run_loop`)."""

    runtime_loop = "ExecuTorch TextLLMRunner"

    def __init__(self, path: Path, tokenizer_json: Path | None = None, threads: int | None = None):
        self.path, self.tokenizer_json = path, tokenizer_json
        try:
            self.program = PteProgram(str(path), threads)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        self.eos_ids, self.max_context = self.program.eos_ids, self.program.max_context

    def logits(self, ids: np.ndarray) -> np.ndarray:
        return self.program.logits(ids)

    def run_loop(self, prompt: np.ndarray, new_tokens: int, expected: tuple[int, ...]) -> LoopRun | None:
        """The runner takes text: the prompt ids are decoded, and where the tokenizer reads that text back as other
        ids (a window cut mid-word), stepping is compared from the ids the runner will see."""
        if self.tokenizer_json is None:
            return None
        from tokenizers import Tokenizer

        from targets.llm.runner_loop import generate

        tokenizer = Tokenizer.from_file(str(self.tokenizer_json))
        text = tokenizer.decode([int(t) for t in prompt])
        read_back = tokenizer.encode(text).ids
        if expected and list(read_back) != [int(t) for t in prompt]:
            expected = self.greedy(np.array(read_back), len(expected)).tokens
        result = generate(self.path, self.tokenizer_json, text, new_tokens)
        shown = tokenizer.decode(list(expected), skip_special_tokens=False)   # the runner prints the EOS it stops at
        return LoopRun(result.text, shown, result.generated_tokens, result.first_token_ms, result.decode_tokens_per_s)

    def greedy(self, prompt: np.ndarray, new_tokens: int) -> GreedyRun:
        return GreedyRun(*self.program.greedy(prompt, new_tokens))


def source_logits(model: Any, ids: np.ndarray) -> np.ndarray:
    """The source model's teacher-forced logits (positions x vocabulary), one full forward."""
    import torch

    with torch.no_grad():
        return model(input_ids=torch.from_numpy(ids.astype(np.int64)).reshape(1, -1)).logits[0].float().numpy()


def source_greedy(model: Any, prompt: np.ndarray, new_tokens: int, eos_ids: tuple[int, ...]) -> tuple[int, ...]:
    """The source's greedy continuation by full recompute (no cache): the reference every artifact must match."""
    ids = list(int(t) for t in prompt)
    out: list[int] = []
    for _ in range(new_tokens):
        token = int(np.argmax(source_logits(model, np.array(ids))[-1]))
        out.append(token)
        if token in eos_ids:
            break
        ids.append(token)
    return tuple(out)
