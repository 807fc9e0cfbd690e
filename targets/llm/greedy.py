"""The greedy decode loop every language-model session shares: argmax, stop after an EOS id or at the context's
end, otherwise one runtime call per token, each timed. Standalone (numpy only): it is also pushed to a board with
the program runner (targets/llm/pte_program.py), so a board decodes with this same loop."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np


class Greedy(NamedTuple):
    tokens: tuple[int, ...]           # the continuation, not the prompt
    first_token_s: float              # prefill of the prompt and the first token's logits
    decode_s: tuple[float, ...]       # each later token's call


def continue_greedily(last: np.ndarray, first_token_s: float, step: Callable[[int, int], np.ndarray], position: int,
                      new_tokens: int, max_context: int, eos_ids: tuple[int, ...]) -> Greedy:
    """From the prompt's last logits `last` (taken in `first_token_s`): `step(token, position)` feeds one token at
    its cache position and returns the next logits."""
    tokens: list[int] = []
    steps: list[float] = []
    while len(tokens) < new_tokens and position < max_context - 1:
        token = int(np.argmax(last))
        tokens.append(token)
        if token in eos_ids:
            break
        started = time.perf_counter()
        last = step(token, position)
        steps.append(time.perf_counter() - started)
        position += 1
    return Greedy(tuple(tokens), first_token_s, tuple(steps))
