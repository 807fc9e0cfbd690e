"""The exported decoder run in ExecuTorch's runtime, one call at a time, as a phone app's loop would: prefill a
prompt, then decode token by token through the program's own KV cache. Teacher-forced logits, greedy
continuations and their timings all come from here."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.plugins import DecoderSession, GreedyRun, LoopRun
from targets.llm.greedy import continue_greedily


class PteDecoder(DecoderSession):
    """One loaded program; `reset` happens implicitly: each sequence starts again at cache position 0. With a
    tokenizer beside it, ExecuTorch's own LLM runner drives the same file (`run_loop`)."""

    runtime_loop = "ExecuTorch TextLLMRunner"

    def __init__(self, path: Path, tokenizer_json: Path | None = None, threads: int | None = None):
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime

        if threads is not None:
            portable_lib._unsafe_reset_threadpool(threads)   # XNNPACK's pool; must precede loading
        self.path, self.tokenizer_json = path, tokenizer_json
        try:
            program = Runtime.get().load_program(str(path))
        except Exception as exc:
            raise InputError(f"{path} is not a loadable ExecuTorch program: {exc}") from exc
        if "get_eos_ids" not in program.method_names or "get_max_context_len" not in program.method_names:
            methods = ", ".join(sorted(program.method_names))
            raise InputError(f"{path} is not an ExecuTorch language model: it has no get_eos_ids / "
                             f"get_max_context_len metadata methods (methods: {methods})")
        self.forward = program.load_method("forward")
        self.eos_ids = tuple(int(v) for v in program.load_method("get_eos_ids").execute([]))
        self.max_context = int(program.load_method("get_max_context_len").execute([])[0])

    def _call(self, ids: np.ndarray, start: int) -> np.ndarray:
        import torch

        tokens = torch.from_numpy(np.array(ids, dtype=np.int64)).reshape(1, -1)   # a copy: inputs may be read-only
        positions = torch.arange(start, start + tokens.shape[1], dtype=torch.long)
        return self.forward.execute([tokens, positions])[0].numpy()[0]

    def logits(self, ids: np.ndarray, chunk: int = 32) -> np.ndarray:
        """Teacher-forced logits of every position of `ids` (positions x vocabulary), prefilled in chunks."""
        if len(ids) > self.max_context - 1:
            raise ValueError(f"{len(ids)} tokens exceed the program's context of {self.max_context}")
        parts = [self._call(ids[start:start + chunk], start) for start in range(0, len(ids), chunk)]
        return np.concatenate(parts, axis=0)

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
        started = time.perf_counter()
        last = self._call(prompt, 0)[-1]
        first = time.perf_counter() - started
        return continue_greedily(last, first, lambda token, at: self._call(np.array([token]), at)[-1], len(prompt),
                                 new_tokens, self.max_context, self.eos_ids)

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
