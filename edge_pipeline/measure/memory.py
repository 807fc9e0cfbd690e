"""Runtime memory of one artifact under an emulated device profile.

The measuring worker first loads the runtime's libraries (the runner's `preload`), then opens the model and
runs it while a sampler thread reads the process's resident set (`/proc/self/statm`) every millisecond: the
figure is what the model adds (weights, arena, the runtime's first-use initialisation), measured before anything
else in that fresh process could leave freed memory for the allocator to reuse. A profile's `memory-mb` is the
device's budget for that figure: exceeding it fails the artifact, as the phone's low-memory killer would end the app.
"""
from __future__ import annotations

import os
import threading
import time
from types import TracebackType

from edge_pipeline.errors import MemoryLimitExceeded

PAGE = os.sysconf("SC_PAGE_SIZE") if os.name == "posix" else 4096
MIB = 1024 * 1024


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


class RssSampler:
    """Peak resident memory above the level at start, sampled on a background thread."""

    def __init__(self, interval_s: float = 0.001):
        self.interval_s = interval_s
        self.baseline = current_rss_bytes()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss_bytes())
            time.sleep(self.interval_s)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss_bytes())

    @property
    def added_mb(self) -> float:
        return round(max(0, self.peak - self.baseline) / MIB, 2)


def check_memory_limit(label: str, profile_name: str, added_mb: float, limit_mb: float | None) -> None:
    if limit_mb is not None and added_mb > limit_mb:
        raise MemoryLimitExceeded(f"{label} needs {added_mb:.1f} MiB to load and run, over the {profile_name} "
                                  f"profile's memory limit of {limit_mb:g} MiB (memory-mb)")
