"""The numbers a language model's verdict rests on (numpy only): windows compared without crossing their ends,
non-finite logits refused, and a decode rate this host's memory could not deliver flagged."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edge_pipeline.measure.bandwidth import CACHE_RESIDENT_BYTES, implausible_decode, memory_bandwidth_gbs
from edge_pipeline.measure.generation import compare_logits, compare_windows, first_divergence


def test_windows_are_compared_without_pairs_across_their_ends() -> None:
    rng = np.random.default_rng(0)
    ids = [rng.integers(0, 50, 12), rng.integers(0, 50, 20)]
    logits = [rng.normal(size=(len(w), 50)) for w in ids]
    merged, worst = compare_windows(logits, [x + 0.01 * rng.normal(size=x.shape) for x in logits], ids)
    parts = [compare_logits(a, a, w) for a, w in zip(logits, ids)]
    assert merged.positions == 32 and 0 <= worst < 2
    expected = math.exp((11 * math.log(parts[0].source_perplexity) + 19 * math.log(parts[1].source_perplexity)) / 30)
    assert merged.source_perplexity == pytest.approx(expected)
    broken = [logits[0], np.full_like(logits[1], np.nan)]
    with pytest.raises(ValueError, match=r"NaN or infinity \(window 1\)"):
        compare_windows(logits, broken, ids)


def test_first_divergence_names_the_first_differing_token() -> None:
    assert first_divergence((1, 2, 3), (1, 2, 3)) is None
    assert first_divergence((1, 2, 3), (1, 5, 3)) == 1
    assert first_divergence((1, 2, 3), (1, 2)) == 2          # one stopped early (an EOS the other did not see)


def test_a_decode_rate_beyond_the_hosts_memory_is_flagged() -> None:
    bandwidth = memory_bandwidth_gbs()
    assert 0.1 < bandwidth < 10_000
    size = 1 << 30                                           # a 1 GiB model
    assert implausible_decode(size, 1500.0, bandwidth) is not None    # 1.6 TB/s: MNN#3947's figure
    assert "implausible decode rate" in implausible_decode(size, 1500.0, bandwidth)
    assert implausible_decode(size, 0.5 * bandwidth, bandwidth) is None
    assert implausible_decode(CACHE_RESIDENT_BYTES - 1, 1e6, bandwidth) is None     # fits in the caches


def test_a_runtime_loop_reporting_nan_tokens_per_second_gives_no_rate() -> None:
    """A runner plugin's impossible figure is dropped, never medianed into the report (JSON holds no NaN)."""
    from edge_pipeline.measure.generation_stage import decode_rate
    from edge_pipeline.plugins import DecoderSession, GreedyRun, LoopRun

    class NanLoop(DecoderSession):
        def logits(self, ids: np.ndarray) -> np.ndarray:
            return np.zeros((len(ids), 4))

        def greedy(self, prompt: np.ndarray, new_tokens: int) -> GreedyRun:
            return GreedyRun((), 0.001, ())

        def run_loop(self, prompt: np.ndarray, new_tokens: int, expected: tuple[int, ...]) -> LoopRun:
            return LoopRun("", "", new_tokens, float("nan"), float("nan"))

    assert decode_rate(NanLoop(), np.array([1, 2]), 8) == (None, None)
