"""ExecuTorch's own LLM runner (`TextLLMRunner`, shipped in the executorch wheel) on the exported file: the loop a
phone app runs. Its text must be what stepping the program token by token gives, and it must stop at the EOS ids
the file declares; its Stats are the vendor's time-to-first-token and tokens-per-second figures."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunnerResult:
    text: str
    prompt_tokens: int
    generated_tokens: int                   # as its Stats count them: the token prefill yields is not counted
    first_token_ms: float                   # the runner's clock has millisecond resolution
    decode_tokens_per_s: float | None


def generate(pte: Path, tokenizer_json: Path, prompt: str, new_tokens: int) -> RunnerResult:
    """Greedy (temperature 0) generation by the runner; the prompt is not echoed."""
    from executorch.extension.llm.runner import GenerationConfig, TextLLMRunner

    runner = TextLLMRunner(str(pte), str(tokenizer_json))
    pieces: list[str] = []
    stats: list[object] = []
    config = GenerationConfig(echo=False, max_new_tokens=new_tokens, temperature=0.0)
    runner.generate(prompt, config, token_callback=pieces.append, stats_callback=stats.append)
    figures = json.loads(stats[-1].to_json_string()) if stats else {}
    start, first = figures.get("inference_start_ms"), figures.get("first_token_ms")
    return RunnerResult("".join(pieces), int(figures.get("prompt_tokens", 0)), int(figures.get("generated_tokens", 0)),
                        float(first - start) if first is not None and start is not None else float("nan"),
                        figures.get("decode_token_per_sec"))
