"""Is a decode rate possible on this host? Each decoded token reads every weight once, so a rate times the
weights' size is memory traffic; beyond what this host's memory delivers (measured here, a large copy), the
figure is wrong (a timer, a delegate that did not run, tokens that were not generated). Models small enough to
stay in the CPU caches are not judged: their weights are not read from memory."""
from __future__ import annotations

import time
from functools import lru_cache

import numpy as np

CACHE_RESIDENT_BYTES = 64 << 20     # below this a model may live in the caches: memory bandwidth does not bound it
COPY_BYTES = 256 << 20


@lru_cache(maxsize=1)
def memory_bandwidth_gbs() -> float:
    """Best of 3 large copies (read + write), in GB/s."""
    source = np.ones(COPY_BYTES // 8, dtype=np.float64)
    target = np.empty_like(source)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - started)
    return 2 * COPY_BYTES / best / 1e9


def implausible_decode(weights_bytes: int, tokens_per_s: float, bandwidth_gbs: float) -> str | None:
    """Why `tokens_per_s` cannot be true for weights of `weights_bytes` (None: it can, or cannot be judged)."""
    if weights_bytes < CACHE_RESIDENT_BYTES or tokens_per_s <= 0:
        return None
    needed = weights_bytes * tokens_per_s / 1e9
    if needed <= bandwidth_gbs:
        return None
    return (f"implausible decode rate: {tokens_per_s:.1f} tokens/s over {weights_bytes / 2**20:.0f} MiB of weights "
            f"reads {needed:.1f} GB/s, above the {bandwidth_gbs:.1f} GB/s this host's memory delivers (measured): "
            f"check that every token was generated and the delegate ran")
