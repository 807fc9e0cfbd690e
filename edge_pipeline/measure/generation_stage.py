"""Validate + measure a language-model artifact (task `text-generation`) in its own runtime, tier by tier:

1. float is exact: every prompt's greedy continuation is the source's, token for token;
2. the artifact keeps the source's meaning: teacher-forced next-token agreement and the perplexity increase on
   the evaluation windows, within the precision's thresholds (precision.py says why each);
3. the runtime's own generation loop (an app's) says what stepping the artifact says.

Then the speed an app sees, on this host and said so: load time, time to first token per prompt length, prefill
and decode tokens per second (the runtime loop's own clock), per thread count."""
from __future__ import annotations

import statistics
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge_pipeline.datafiles import load_bundle, load_outputs
from edge_pipeline.host import host_cores, measured_on, package_version
from edge_pipeline.measure.bandwidth import implausible_decode, memory_bandwidth_gbs
from edge_pipeline.measure.cpus import peak_rss_mb, pinned_cpus, thread_counts
from edge_pipeline.measure.generation import (
    CHAT_CONVERSATION,
    TokenAgreement,
    compare_windows,
    first_divergence,
    text_of_codes,
    unpadded,
)
from edge_pipeline.numbers import is_finite
from edge_pipeline.plugins import DecoderSession, Runner
from edge_pipeline.precision import Thresholds
from edge_pipeline.records import MeasureJob, Measurement
from edge_pipeline.report.model import GenerationReport, Validation

TIMED_RUNS = 7
MAX_TIMED_TOKENS = 256    # decode timed over as many tokens as the context allows, up to this: the runner's clock
                          # ticks in milliseconds, and a tiny model decodes 32 tokens in a few of them
TTFT_PROMPTS = (64, 128, 512)   # prompt lengths timed to the first token, where the context holds them


def run(job: MeasureJob, runner: Runner) -> Measurement:
    """`runner`: the artifact's, wrapped by the device's transport where `job.device` names one."""
    runner.preload()
    started = time.perf_counter()
    session = runner.open_decoder(job.artifact, host_cores())
    load_ms = session.load_ms if session.load_ms is not None else (time.perf_counter() - started) * 1000
    try:
        return _judged(job, runner, session, load_ms)
    finally:
        session.close()


def _judged(job: MeasureJob, runner: Runner, session: DecoderSession, load_ms: float) -> Measurement:
    """The three tiers on `session`, then (when they pass) its speed."""
    data, reference = load_bundle(job.data), load_outputs(job.reference).as_dict()
    windows = data.eval_inputs.arrays[0]
    prompts = [np.asarray(p, np.int64) for p in unpadded(reference["prompt_ids"])]
    expected = unpadded(reference["greedy_ids"])
    prompt = len(prompts[0])
    try:
        figures, worst = compare_windows(list(reference["logits"]), [session.logits(w) for w in windows],
                                         list(windows))
    except ValueError as exc:
        return _refused(runner, job, f"tier 2: {exc}", "tier 2: finite logits")
    stepped = [session.greedy(p, len(e) or 1) for p, e in zip(prompts, expected)]
    divergence = tuple(first_divergence(e, s.tokens) for e, s in zip(expected, stepped))
    loops = [session.run_loop(p, len(e) or 1, s.tokens) for p, e, s in zip(prompts, expected, stepped)]
    chat = _chat(session, reference.get("chat_prompt"))
    verdict, decided_by = _verdict(job.thresholds, figures, worst, divergence, loops, session, chat)
    validation = Validation(passed=verdict is None, message=verdict or "every tier passed", eval_samples=len(windows),
                            thresholds=_thresholds(job.thresholds), decided_by=decided_by,
                            agreement=round(figures.agreement, 6))
    report = GenerationReport(
        windows=len(windows), positions=figures.positions, token_agreement=round(figures.agreement, 6),
        mean_kl=round(figures.mean_kl, 6), perplexity=round(figures.perplexity, 4),
        source_perplexity=round(figures.source_perplexity, 4),
        perplexity_increase_pct=round(figures.perplexity_increase_pct, 3),
        worst_logit_sqnr_db=round(figures.worst_sqnr_db, 2), worst_position=figures.worst_position,
        prompts=len(prompts), prompt_tokens=prompt, new_tokens=max(len(e) for e in expected),
        sample_prompt_ids=tuple(int(t) for t in prompts[0]),
        first_divergence=divergence, runtime_loop=session.runtime_loop if any(loops) else None,
        runtime_loop_matches=all(loop.text == loop.expected_text for loop in loops if loop) if any(loops) else None,
        chat_template_matches=chat[0] == chat[1] if chat is not None else None,
        sample_continuation=loops[0].text if loops and loops[0] is not None else None,
        sample_new_tokens=(len(expected[0]) or 1) if loops and loops[0] is not None else None,
        load_ms=round(load_ms, 2))
    measured = Measurement(runtime=runner.runtime,
                           runtime_version=session.runtime_version or package_version(runner.distribution),
                           validation=validation, generation=report)
    if verdict is not None:
        return measured
    timed = _speed(runner, job, session, np.concatenate(list(windows)), max(len(e) for e in expected), prompt, report)
    if session.device_label is not None:       # the board's memory and bandwidth are not this host's
        return replace(measured, generation=timed)
    rate = timed.decode_tokens_per_s
    doubt = implausible_decode(_weights_bytes(job.artifact), rate, memory_bandwidth_gbs()) if rate else None
    validation = replace(validation, warnings=(*validation.warnings, f"{job.artifact.name}: {doubt}")) \
        if doubt else validation
    return replace(measured, validation=validation, generation=timed, peak_rss_mb=peak_rss_mb())


def _verdict(thresholds: Thresholds, figures: TokenAgreement, worst: int, divergence: tuple[int | None, ...],
             loops: list, session: DecoderSession, chat: tuple[str, str] | None) -> tuple[str | None, str]:
    """The first tier that fails, with the prompt and the token position, or None."""
    if thresholds.exact:
        for index, position in enumerate(divergence):
            if position is not None:
                return (f"tier 1: the greedy continuation of prompt {index} differs from the source's at token "
                        f"{position}", "tier 1: greedy tokens")
    if figures.agreement < thresholds.min_token_agreement:
        return (f"tier 2: next-token agreement {figures.agreement:.3f} < {thresholds.min_token_agreement} "
                f"(worst logits: window {worst}, position {figures.worst_position}, "
                f"{figures.worst_sqnr_db:.1f} dB)", "tier 2: token agreement")
    if figures.perplexity_increase_pct > thresholds.max_ppl_increase_pct:
        return (f"tier 2: perplexity {figures.perplexity:.2f} is {figures.perplexity_increase_pct:.1f}% above the "
                f"source's {figures.source_perplexity:.2f} (limit {thresholds.max_ppl_increase_pct}%)",
                "tier 2: perplexity")
    if chat is not None and chat[0] != chat[1]:       # static, so told before what the loop generated
        return (f"tier 3: {session.runtime_loop} renders the chat template as {chat[0][:80]!r}, the source renders "
                f"{chat[1][:80]!r}", "tier 3: chat template")
    for index, loop in enumerate(loops):
        if loop is not None and loop.text != loop.expected_text:
            return (f"tier 3: {session.runtime_loop} generated {loop.text[:60]!r} for prompt {index}, stepping the "
                    f"artifact gives {loop.expected_text[:60]!r}", "tier 3: runtime loop")
    return None, "tiers 1-3" if thresholds.exact else "tiers 2-3"


def _chat(session: DecoderSession, codes: np.ndarray | None) -> tuple[str, str] | None:
    """(the runtime's rendering, the source's) of the fixed conversation, where both exist."""
    if codes is None:
        return None
    rendered = session.render_chat(CHAT_CONVERSATION)
    return None if rendered is None else (rendered, text_of_codes(codes))


def _weights_bytes(artifact: Path) -> int:
    """What a decode step reads: the program (weights inside), not the tokenizer beside it."""
    program = [p for p in artifact.rglob("*") if p.is_file() and p.suffix in (".pte", ".tflite", ".onnx", ".data")]
    return sum(p.stat().st_size for p in program) if program else 0


def _thresholds(thresholds: Thresholds) -> dict[str, float | bool]:
    return {"min_token_agreement": thresholds.min_token_agreement,
            "max_ppl_increase_pct": thresholds.max_ppl_increase_pct, "greedy_exact": thresholds.exact}


def _speed(runner: Runner, job: MeasureJob, session: DecoderSession, window: np.ndarray, new_tokens: int,
           prompt: int, report: GenerationReport) -> GenerationReport:
    """`report` with the speed figures: TTFT per prompt length (the prompt's, and 64, 128 and 512 tokens of the
    evaluation text where the context holds them) and prefill tokens/s (the app's path, all threads); decode
    tokens/s from the runtime loop's own clock (stepping where the runtime has no loop), per
    thread count, median of runs."""
    ttft = {}
    room = min(len(window), session.max_context - 2)
    prompt = min(prompt, room)       # a user's prompt longer than the evaluation text is timed at what it holds
    for length in sorted({prompt, *(n for n in TTFT_PROMPTS if n <= room)}):
        times = [session.greedy(window[:length], 1).first_token_s for _ in range(TIMED_RUNS)]
        ttft[str(length)] = round(statistics.median(times) * 1000, 3)
    timed = max(new_tokens, min(MAX_TIMED_TOKENS, session.max_context - prompt - 2))
    steps = [session.greedy(window[:prompt], timed) for _ in range(TIMED_RUNS)]
    stepping = statistics.median(len(s.decode_s) / sum(s.decode_s) for s in steps if s.decode_s) \
        if any(s.decode_s for s in steps) else None
    by_threads, noise = {}, {}
    cores = session.cores or host_cores()
    for threads in thread_counts(job.profile.threads, cores):
        with pinned_cpus(threads) if session.device_label is None else nullcontext():
            opened = runner.open_decoder(job.artifact, threads)
            try:
                by_threads[str(threads)], noise[str(threads)] = decode_rate(opened, window[:prompt], timed)
            finally:
                opened.close()
    chosen = str(cores) if str(cores) in by_threads else next(iter(by_threads), None)
    all_threads = by_threads.get(chosen) if chosen else None
    longest = max(ttft, key=int)
    return replace(report, ttft_ms=ttft[str(prompt)], ttft_ms_by_prompt_tokens=ttft,
                   prefill_tokens_per_s=round(int(longest) / (ttft[longest] / 1000), 1),
                   decode_tokens_per_s=all_threads, decode_tokens_per_s_by_threads=by_threads,
                   decode_ms_per_token_noise=noise.get(chosen) if chosen else None, decode_tokens_timed=timed,
                   decode_tokens_per_s_stepping=round(stepping, 1) if stepping else None,
                   measured_on=(session.device_label or measured_on(job.target, host_cores()))
                   + f"; decode by {session.runtime_loop or 'stepping'}")


def decode_rate(session: DecoderSession, prompt: np.ndarray, new_tokens: int) -> tuple[float | None, float | None]:
    """Median decode tokens/s over the runs, and half the spread of their milliseconds per token (the noise a
    baseline comparison allows: the runner's clock ticks in whole milliseconds)."""
    session.run_loop(prompt, new_tokens, ())     # warm-up: the first call prepares the delegate's kernels
    rates = []
    for _ in range(TIMED_RUNS):
        loop = session.run_loop(prompt, new_tokens, ())
        if loop is not None and is_finite(loop.decode_tokens_per_s) and loop.decode_tokens_per_s > 0:
            rates.append(loop.decode_tokens_per_s)
        elif loop is None:
            steps = session.greedy(prompt, new_tokens).decode_s
            if steps:
                rates.append(len(steps) / sum(steps))
    if not rates:
        return None, None
    per_token = [1000 / r for r in rates]
    return round(statistics.median(rates), 1), round((max(per_token) - min(per_token)) / 2, 6)


def _refused(runner: Runner, job: MeasureJob, message: str, decided_by: str) -> Measurement:
    validation = Validation(passed=False, message=message, thresholds=_thresholds(job.thresholds),
                            decided_by=decided_by)
    return Measurement(runtime=runner.runtime, runtime_version=package_version(runner.distribution),
                       validation=validation)


__all__ = ["run"]
