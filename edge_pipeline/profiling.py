"""Latency measurement: warm-up, then timed runs, summarised as percentiles."""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from .plugins import Session


def time_session(session: Session, inputs: list[np.ndarray], warmup: int, runs: int) -> dict[str, Any]:
    """Times in Python, unless the session times inside its own runtime (e.g. TF.js in another process)."""
    if hasattr(session, "benchmark"):
        return summarize(session.benchmark(inputs, warmup, runs))
    for _ in range(warmup):
        session.run(inputs)
    samples = np.empty(runs, dtype=np.float64)
    for i in range(runs):
        start = time.perf_counter_ns()
        session.run(inputs)
        samples[i] = (time.perf_counter_ns() - start) / 1e6
    return summarize(samples)


def summarize(samples_ms: np.ndarray) -> dict[str, Any]:
    return {"p50": float(np.percentile(samples_ms, 50)), "p90": float(np.percentile(samples_ms, 90)),
            "mean": float(samples_ms.mean()), "stdev": float(samples_ms.std()),
            "min": float(samples_ms.min()), "runs": int(samples_ms.size)}


def run_batches(session: Session, inputs: np.ndarray, batch: int) -> np.ndarray:
    """Feeds `inputs` in chunks of the artifact's fixed batch size; a ragged tail is dropped."""
    if hasattr(session, "run_batches"):
        return session.run_batches(inputs, batch)
    usable = (len(inputs) // batch) * batch
    outs = [session.run([np.ascontiguousarray(inputs[i:i + batch])])[0] for i in range(0, usable, batch)]
    return np.concatenate(outs) if outs else np.empty((0,))
