"""Latency measurement: warm-up, then timed runs, summarised as percentiles."""
from __future__ import annotations

import time

import numpy as np

from edge_pipeline.plugins import Session
from edge_pipeline.report.model import Latency
from edge_pipeline.tensors import Tensors, stack_batches


def time_session(session: Session, inputs: list[np.ndarray], warmup: int, runs: int) -> Latency:
    """Times in Python, unless the session times inside its own runtime (e.g. TF.js in another process)."""
    if session.times_itself:
        return summarize(np.asarray(session.benchmark(inputs, warmup, runs), dtype=np.float64))
    for _ in range(warmup):
        session.run(inputs)
    samples = np.empty(runs, dtype=np.float64)
    for i in range(runs):
        start = time.perf_counter_ns()
        session.run(inputs)
        samples[i] = (time.perf_counter_ns() - start) / 1e6
    return summarize(samples)


REPEATS = 5


def summarize(samples_ms: np.ndarray) -> Latency:
    """Percentiles over all runs, plus the spread of the median across consecutive repeats: `noise` is
    what a latency gate must see exceeded before it calls a difference real."""
    q = np.percentile(samples_ms, [10, 25, 50, 75, 90])
    repeat_p50 = [float(np.median(chunk)) for chunk in np.array_split(samples_ms, min(REPEATS, samples_ms.size))]
    noise = float(np.std(repeat_p50)) if len(repeat_p50) > 1 else 0.0
    return Latency(p50=float(q[2]), p90=float(q[4]), mean=float(samples_ms.mean()), stdev=float(samples_ms.std()),
                   min=float(samples_ms.min()), max=float(samples_ms.max()), p10=float(q[0]), p25=float(q[1]),
                   p75=float(q[3]), iqr=float(q[3] - q[1]), repeat_p50=repeat_p50, noise=noise,
                   runs=int(samples_ms.size))


def run_batches(session: Session, inputs: Tensors, batch: int) -> list[np.ndarray]:
    """Feeds every input in chunks of the artifact's fixed batch size (a ragged tail is dropped) and stacks
    each raw output; `align_outputs` then names them."""
    whole = session.run_batches(inputs, batch)
    if whole is not None:
        return whole
    chunks: list[list[np.ndarray]] = []
    for part in inputs.batches(batch):
        outputs = session.run(list(part.arrays))
        chunks = chunks or [[] for _ in outputs]
        for i, out in enumerate(outputs):
            chunks[i].append(np.asarray(out))
    return [stack_batches(c) for c in chunks]
