"""`[quantization] sensitivity` modes, the per-channel ranking metric and the fallback search, without converters
(the end-to-end checks on fragile models are in test_sensitivity_fallback.py)."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from edge_pipeline.config import check_quantization
from edge_pipeline.errors import ConfigError
from edge_pipeline.plugins import DataBundle
from quantization.sensitivity import LayerErrors, fallback, rank_and_fall_back, sqnr_db

from .conftest import run_cli


@pytest.mark.parametrize("value, mode", [("on-failure", "on-failure"), ("always", "always"), ("never", "never"),
                                         (True, "always"), (False, "never")])
def test_sensitivity_modes_and_their_deprecated_boolean_aliases(value: object, mode: str) -> None:
    assert check_quantization({"sensitivity": value}, "quantization") == {"sensitivity": mode}


@pytest.mark.parametrize("value", ["sometimes", "", 3, ["always"]])
def test_an_invalid_sensitivity_names_the_key_and_the_modes(value: object) -> None:
    with pytest.raises(ConfigError) as error:
        check_quantization({"sensitivity": value}, "tool.edgepipe.quantization")
    assert "'tool.edgepipe.quantization.sensitivity' must be one of: on-failure, always, never" in str(error.value)


def test_an_invalid_sensitivity_exits_2_from_the_config_and_the_flag(tmp_path: Path) -> None:
    (tmp_path / "edgepipe.toml").write_text('[quantization]\nsensitivity = "sometimes"\n')
    proc = run_cli("build", "--out", str(tmp_path / "out"), "--json", cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    message = json.loads(proc.stdout)["error"]["message"]
    assert "quantization.sensitivity" in message and "on-failure, always, never" in message and "'sometimes'" in message
    (tmp_path / "edgepipe.toml").write_text("[quantization]\nsensitivity = true\n")   # deprecated, still accepted
    proc = run_cli("build", "--out", str(tmp_path / "out"), "--json", "--sensitivity", "bogus", cwd=tmp_path,
                   timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    message = json.loads(proc.stdout)["error"]["message"]
    assert ("--sensitivity" in message and "quantization.sensitivity" in message
            and "on-failure, always, never" in message)


def test_an_outlier_channel_cannot_hide_the_channels_it_flattens() -> None:
    """Per-tensor SQNR is dominated by the x1000 channel; the per-channel mean sees the 63 others lost."""
    rng = np.random.default_rng(0)
    reference = np.abs(rng.normal(size=(128, 64))).astype(np.float32)
    reference[:, 7] *= 1000.0
    scale = reference.max() / 127
    flattened = np.round(reference / scale) * scale      # per-tensor int8: most channels round to 0
    assert sqnr_db(reference, flattened) > 30
    errors = LayerErrors()
    for start in range(0, 128, 32):                       # accumulated over batches
        errors.add("fc", reference[start:start + 32], flattened[start:start + 32], -1)
    clean = LayerErrors()
    clean.add("fc", reference, reference + 1e-3, -1)
    (row,), (clean_row,) = errors.rows({"fc": ["fc"]}), clean.rows({"fc": ["fc"]})
    assert row["sqnr_db"] < 1.0 < 40 < clean_row["sqnr_db"]


@pytest.mark.parametrize("n", [1, 4, 52])
def test_fallback_search_needs_logarithmically_many_verifications(n: int) -> None:
    for needed in range(1, n + 1):
        tried: list[int] = []

        def measure(k: int) -> float:
            tried.append(k)
            return 0.0 if k >= needed else 10.0

        assert fallback(measure, n, 1.0) == (needed, True)
        assert len(tried) == len(set(tried)) <= 2 * math.ceil(math.log2(n)) + 1, (needed, tried)
    assert fallback(lambda k: 10.0, n, 1.0) == (n, False)


def test_a_ladder_tries_its_last_int16_rung_before_any_float_one() -> None:
    """30 regions, 60 rungs: k = 30 (every region int16) is measured before any k above it, wherever k holds."""
    for needed in (3, 30, 31, 45, 60):
        tried: list[int] = []

        def measure(k: int, needed: int = needed) -> float:
            tried.append(k)
            return 0.0 if k >= needed else 10.0

        assert fallback(measure, 60, 1.0, stops=(30,)) == (needed, True)
        if needed > 30:
            assert 30 in tried and all(k <= 30 for k in tried[:tried.index(30)]), (needed, tried)
        assert len(tried) == len(set(tried)), tried


def _data(samples: int = 8) -> DataBundle:
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(samples, 3)).astype(np.float32)
    return DataBundle(example=inputs[:1], calibration=inputs, eval_inputs=inputs, eval_labels=inputs.argmax(axis=1))


def _backend(layers: list[str], harmful: set[str]) -> tuple[list, list, object, object]:
    """A fake backend: quantizing scrambles the outputs until every `harmful` layer is kept float."""
    quantized, ranked = [], []

    def predict_ok(x: np.ndarray) -> np.ndarray:
        return x

    def quantize(skip: frozenset[str] = frozenset()) -> tuple[str, object]:
        quantized.append(skip)
        return f"model-{sorted(skip)}", predict_ok if harmful <= skip else (lambda x: -x)

    def rank(result: str) -> tuple[list[dict], int]:
        ranked.append(result)
        return [{"layer": name, "sqnr_db": 0.0 if name in harmful else 40.0} for name in
                sorted(layers, key=lambda name: name not in harmful)], 0

    return quantized, ranked, quantize, rank


@pytest.mark.parametrize("mode, budget, ranks, passes", [
    ("on-failure", None, False, 1),      # no budget: nothing to miss, no ranking
    ("never", 1.0, False, 1),            # never ranks, so never falls back
    ("always", None, True, 1),           # ranked from the one quantized model
    ("on-failure", 1.0, True, 3),        # missed: ranked, then k = 1 and k = 2 verified
])
def test_modes_decide_when_to_rank(mode: str, budget: float | None, ranks: bool, passes: int) -> None:
    layers = [f"layer{i}" for i in range(52)]
    quantized, ranked, quantize, rank = _backend(layers, {"layer3", "layer40"})
    result, notes = rank_and_fall_back(quantize, rank, lambda x: x, _data(), budget, "method", mode)
    assert bool(ranked) == ranks and notes["quantization_passes"] == passes == len(quantized)
    assert notes["sensitivity"]["mode"] == mode
    if not ranks:
        assert notes["sensitivity"]["status"].startswith("not run") and "fallback" not in notes
    if budget is not None and ranks:
        assert notes["fallback"]["kept_float"] == ["layer3", "layer40"] and notes["fallback"]["met"]
        assert result == "model-['layer3', 'layer40']" and notes["fallback"]["verifications"] == 2


def test_on_failure_with_a_budget_that_holds_does_not_rank() -> None:
    quantized, ranked, quantize, rank = _backend(["a", "b"], set())
    result, notes = rank_and_fall_back(quantize, rank, lambda x: x, _data(), 1.0, "method", "on-failure")
    assert not ranked and len(quantized) == 1 and result == "model-[]"
    assert notes["sensitivity"]["status"] == "not run (on-failure: no budget missed)"
    assert notes["budget_check"]["drop_pts"] == 0.0


def test_on_failure_without_labels_cannot_miss_a_budget_and_says_so() -> None:
    quantized, ranked, quantize, rank = _backend(["a", "b"], {"a"})
    data = _data()
    data = dataclasses.replace(data, eval_labels=None)
    _, notes = rank_and_fall_back(quantize, rank, lambda x: x, data, 1.0, "method", "on-failure")
    assert not ranked and len(quantized) == 1
    assert notes["sensitivity"]["status"] == "not run (on-failure: no labels to measure the budget with)"
