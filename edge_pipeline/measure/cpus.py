"""The CPUs a measurement runs on: thread counts asked for (0: all cores), pinning to emulate a device with
fewer cores, and the measuring process's peak memory."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def peak_rss_mb() -> float:
    """Peak resident memory of this measuring process so far (Python + the runtime + the model), in MiB."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@contextlib.contextmanager
def pinned_cpus(threads: int) -> Iterator[list[int]]:
    """Emulates a device with fewer cores: the measuring process runs on `threads` CPUs only."""
    try:
        available = sorted(os.sched_getaffinity(0))
    except AttributeError:   # not Linux
        available = []
    if not available or threads >= len(available):
        yield []
        return
    os.sched_setaffinity(0, available[:threads])
    try:
        yield available[:threads]
    finally:
        os.sched_setaffinity(0, available)


def thread_counts(requested: tuple[int, ...], cores: int) -> list[int]:
    """0 means all cores; duplicates (e.g. 1 and all on a 1-core host) are measured once."""
    seen: list[int] = []
    for t in requested:
        n = cores if t == 0 else t
        if n not in seen:
            seen.append(n)
    return seen
