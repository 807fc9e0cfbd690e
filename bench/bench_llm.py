"""Benchmark (issue 21, first layer): the tiny-lm example exported to `.pte` (fp32, 8da4w) and judged token by
token against its source; time to first token and decode tokens/s measured two ways on the same file: stepping the
program in Python (what edgepipe's validation does) and ExecuTorch's own `TextLLMRunner` (the vendor's loop and
its Stats). Writes bench/results/llm.json and llm.md. This host's CPU, never a phone."""
from __future__ import annotations

import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from common import save  # noqa: E402

NEW_TOKENS = 32


def main() -> None:
    import torch

    from edge_pipeline.measure.generation import compare_logits, first_divergence
    from targets.llm import pte_export, runner_loop, stepping, tiny_lm

    torch.set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    model, tokenizer = tiny_lm.make()
    train_s = time.perf_counter() - started
    folder = Path(tempfile.mkdtemp(prefix="bench-llm-"))
    tokenizer.save(str(folder / "tokenizer.json"))
    metadata = pte_export.DecoderMetadata(tiny_lm.CONTEXT, tokenizer.get_vocab_size(),
                                          tokenizer.token_to_id(tiny_lm.BOS), (tokenizer.token_to_id(tiny_lm.EOS),))
    ids = np.array(tokenizer.encode(tiny_lm.corpus().evaluation).ids[:120])
    source = stepping.source_logits(model, ids)
    prompts = [np.array(tokenizer.encode(p).ids) for p in tiny_lm.PROMPTS]
    references = [stepping.source_greedy(model, p, NEW_TOKENS, metadata.eos_ids) for p in prompts]
    rows = []
    for precision in ("fp32", "8da4w"):
        candidate = copy.deepcopy(model)
        started = time.perf_counter()
        if precision == "8da4w":
            pte_export.quantize_8da4w(candidate)
        path = folder / f"{precision}.pte"
        pte_export.export_decoder(candidate, path, metadata)
        export_s = time.perf_counter() - started
        decoder = stepping.PteDecoder(path)
        figures = compare_logits(source, decoder.logits(ids), ids)
        stepped = [decoder.greedy(p, NEW_TOKENS, stop_at_eos=False) for p in prompts]
        runner = [runner_loop.generate(path, folder / "tokenizer.json", p, NEW_TOKENS) for p in tiny_lm.PROMPTS]
        rows.append({
            "artifact": f"pte:{precision}", "size_kb": round(path.stat().st_size / 1024, 1),
            "export_s": round(export_s, 1), "token_agreement": round(figures.agreement, 4),
            "mean_kl": round(figures.mean_kl, 6), "perplexity": round(figures.perplexity, 2),
            "source_perplexity": round(figures.source_perplexity, 2),
            "perplexity_increase_pct": round(figures.perplexity_increase_pct, 2),
            "worst_sqnr_db": round(figures.worst_sqnr_db, 1),
            "first_divergence": [first_divergence(r, s.tokens[:len(r)]) for r, s in zip(references, stepped)],
            "stepping_ttft_ms": round(statistics.median(s.first_token_s for s in stepped) * 1000, 2),
            "stepping_decode_tps": round(statistics.median(len(s.decode_s) / sum(s.decode_s) for s in stepped), 1),
            "runner_ttft_ms": statistics.median(r.first_token_ms for r in runner),
            "runner_decode_tps": statistics.median(r.decode_tokens_per_s or 0.0 for r in runner),
            "runner_text_equals_stepping": all(r.text == tokenizer.decode(list(s.tokens))   # both: NEW_TOKENS
                                               for r, s in zip(runner, stepped)),
            "prompt_tokens": [len(p) for p in prompts], "load_1min": round(os.getloadavg()[0], 2)})
        print(rows[-1], flush=True)
    lines = ["# tiny-lm on ExecuTorch: token-level validation and generation speed", "",
             f"tiny-lm trained here in {train_s:.0f} s (targets/llm/tiny_lm.py); evaluation: 120 held-out tokens, "
             f"{len(prompts)} prompts, {NEW_TOKENS} greedy tokens. This 2-core x86_64 host, all threads; the "
             "runner's clock has millisecond resolution.", "",
             "| artifact | size KB | export s | agreement | mean KL | ppl (source) | ppl increase % | worst SQNR dB | "
             "first divergence | TTFT ms stepping / runner | decode tok/s stepping / runner | runner = stepping |",
             "|---|---:|---:|---:|---:|---|---:|---:|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['artifact']} | {r['size_kb']} | {r['export_s']} | {r['token_agreement']} | "
                     f"{r['mean_kl']} | {r['perplexity']} ({r['source_perplexity']}) | "
                     f"{r['perplexity_increase_pct']} | "
                     f"{r['worst_sqnr_db']} | {r['first_divergence']} | {r['stepping_ttft_ms']} / "
                     f"{r['runner_ttft_ms']} | {r['stepping_decode_tps']} / {r['runner_decode_tps']} | "
                     f"{r['runner_text_equals_stepping']} |")
    save("llm", rows, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
