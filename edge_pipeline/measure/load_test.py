"""A bounded load test of a served artifact: at each concurrency level, that many client threads send the same
request back to back until the level's request count is reached or its time limit passes; the server's memory
is sampled beside them. Client-side latency, on loopback: what a caller on this machine would see."""
from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np

from edge_pipeline.plugins import Session
from edge_pipeline.report.model import LoadLevel, ServerLoad
from edge_pipeline.types import ProfileSettings

MEMORY_EVERY_S = 0.2


def load_test(session: Session, inputs: list[np.ndarray], profile: ProfileSettings, where: str) -> ServerLoad:
    levels = []
    with MemorySampler(session) as memory:
        for concurrency in profile.load_concurrency:
            levels.append(run_level(session, inputs, concurrency, profile.load_requests, profile.load_seconds))
    return ServerLoad(server=session.runtime_label, measured_on=where, peak_memory_mb=memory.peak_mb,
                      levels=tuple(levels))


def run_level(session: Session, inputs: list[np.ndarray], concurrency: int, requests: int,
              seconds: float) -> LoadLevel:
    """`concurrency` clients share a request budget; a request is counted when it is sent and lands in exactly
    one of answered or errors. No new request starts after the time limit (one in flight may finish later)."""
    lock = threading.Lock()
    sent, errors, times_ms = 0, 0, []
    deadline = time.monotonic() + seconds

    def client() -> None:
        nonlocal sent, errors
        while True:
            with lock:
                if sent >= requests or time.monotonic() > deadline:
                    return
                sent += 1
            started = time.perf_counter()
            try:
                session.run(inputs)
                ok = True
            except Exception:      # any failure is the request's: counted, never a thread lost uncounted
                ok = False
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                if ok:
                    times_ms.append(elapsed)
                else:
                    errors += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return level_figures(concurrency, sent, errors, times_ms, wall)


def level_figures(concurrency: int, sent: int, errors: int, times_ms: Sequence[float], wall_s: float) -> LoadLevel:
    """The level's figures: percentiles of the answered requests, throughput of answered requests per second."""
    q = np.percentile(np.asarray(times_ms, dtype=np.float64), [50, 90, 99]) if times_ms else [None] * 3
    return LoadLevel(concurrency=concurrency, requests=sent, answered=len(times_ms), errors=errors,
                     seconds=round(wall_s, 3),
                     p50_ms=_ms(q[0]), p90_ms=_ms(q[1]), p99_ms=_ms(q[2]),
                     throughput_rps=round(len(times_ms) / wall_s, 2) if wall_s > 0 else None)


def _ms(value: float | None) -> float | None:
    return round(float(value), 3) if value is not None else None


class MemorySampler:
    """The server's resident memory (`Session.resident_mb`) every MEMORY_EVERY_S; `peak_mb` None when the
    session cannot say."""

    def __init__(self, session: Session):
        self.session, self.peak_mb = session, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            value = self.session.resident_mb()
            if value is not None:
                self.peak_mb = max(self.peak_mb or 0.0, round(value, 1))
            if self._stop.wait(MEMORY_EVERY_S):
                return

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
