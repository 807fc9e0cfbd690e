"""A language-model `.pte` in ExecuTorch's runtime, one call at a time, as a phone app's loop would: prefill a
prompt, then decode token by token through the program's own KV cache. Standalone (numpy, torch and executorch;
`greedy.py` beside it): edgepipe's own session uses it on this host, and the ssh transport pushes it to a board
and drives it there, so a board steps the artifact with exactly this code.

On a board: `python3 pte_program.py MODEL.pte --threads N` prints the program's metadata as one JSON line, then
answers one JSON request per stdin line with one JSON line ({"error": ...} for a request it cannot serve):
    {"op": "logits", "ids": [...]}                       -> {"shape": [P, V], "logits": base64 float32}
    {"op": "greedy", "prompt": [...], "new_tokens": N}   -> {"tokens": [...], "first_token_s": s, "decode_s": [...]}
Every time is taken on the board, around the runtime calls alone."""
from __future__ import annotations

import argparse
import base64
import json
import sys
import time

import numpy as np

try:
    from targets.llm.greedy import Greedy, continue_greedily
except ImportError:        # on a board: pushed beside this file
    from greedy import Greedy, continue_greedily  # type: ignore[no-redef]

RUNTIME = "ExecuTorch runtime (XNNPACK)"
CHUNK = 32                 # teacher-forced logits are prefilled this many tokens per call


class PteProgram:
    """One loaded program; each sequence starts again at cache position 0 (the cache is overwritten from there).
    Raises ValueError for a file that is not an ExecuTorch language model."""

    def __init__(self, path: str, threads: int | None = None) -> None:
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime

        if threads is not None:
            portable_lib._unsafe_reset_threadpool(threads)   # XNNPACK's pool; must precede loading
        try:
            program = Runtime.get().load_program(path)
        except Exception as exc:
            raise ValueError(f"{path} is not a loadable ExecuTorch program: {exc}") from exc
        if "get_eos_ids" not in program.method_names or "get_max_context_len" not in program.method_names:
            methods = ", ".join(sorted(program.method_names))
            raise ValueError(f"{path} is not an ExecuTorch language model: it has no get_eos_ids / "
                             f"get_max_context_len metadata methods (methods: {methods})")
        self.forward = program.load_method("forward")
        self.eos_ids = tuple(int(v) for v in program.load_method("get_eos_ids").execute([]))
        self.max_context = int(program.load_method("get_max_context_len").execute([])[0])

    def call(self, ids: np.ndarray, start: int) -> np.ndarray:
        """The logits of each of `ids` fed at cache positions start, start + 1, ..."""
        import torch

        tokens = torch.from_numpy(np.array(ids, dtype=np.int64)).reshape(1, -1)   # a copy: inputs may be read-only
        positions = torch.arange(start, start + tokens.shape[1], dtype=torch.long)
        return self.forward.execute([tokens, positions])[0].numpy()[0]

    def logits(self, ids: np.ndarray) -> np.ndarray:
        """Teacher-forced logits of every position of `ids` (positions x vocabulary), prefilled in chunks."""
        if len(ids) > self.max_context - 1:
            raise ValueError(f"{len(ids)} tokens exceed the program's context of {self.max_context}")
        return np.concatenate([self.call(ids[at:at + CHUNK], at) for at in range(0, len(ids), CHUNK)], axis=0)

    def greedy(self, prompt: np.ndarray, new_tokens: int) -> Greedy:
        started = time.perf_counter()
        last = self.call(prompt, 0)[-1]
        first = time.perf_counter() - started
        return continue_greedily(last, first, lambda token, at: self.call(np.array([token]), at)[-1], len(prompt),
                                 new_tokens, self.max_context, self.eos_ids)


def answer(program: PteProgram, request: dict) -> dict:
    """One request of the line protocol (module docstring)."""
    if request.get("op") == "logits":
        logits = np.ascontiguousarray(program.logits(np.asarray(request["ids"], np.int64)), np.float32)
        return {"shape": list(logits.shape), "logits": base64.b64encode(logits.tobytes()).decode("ascii")}
    if request.get("op") == "greedy":
        run = program.greedy(np.asarray(request["prompt"], np.int64), int(request["new_tokens"]))
        return {"tokens": list(run.tokens), "first_token_s": run.first_token_s, "decode_s": list(run.decode_s)}
    return {"error": f"unknown request {str(request.get('op'))[:40]!r}"}


def main() -> int:
    parser = argparse.ArgumentParser(description="Serves one ExecuTorch language model over stdin/stdout.")
    parser.add_argument("program")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    try:
        program = PteProgram(args.program, args.threads)
    except ImportError as exc:
        print(json.dumps({"error": f"the device lacks ExecuTorch's runtime: {exc}"}), flush=True)
        return 3
    except ValueError as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return 2
    from importlib.metadata import version

    load_ms = (time.perf_counter() - started) * 1000
    print(json.dumps({"eos_ids": list(program.eos_ids), "max_context": program.max_context, "runtime": RUNTIME,
                      "version": version("executorch"), "load_ms": load_ms}), flush=True)
    for line in sys.stdin:
        try:
            reply = answer(program, json.loads(line))
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            reply = {"error": str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}
        print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
