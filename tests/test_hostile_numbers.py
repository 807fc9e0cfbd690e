"""No NaN ever passes: a NaN, infinite or out-of-range threshold, budget or metric is refused where it enters
(exit 2, one line naming the key, before any work), and a metric that turns NaN on an artifact fails that artifact.
NaN compares false with everything, so before this a NaN limit read as "met" and a NaN metric as "no drop"."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_pipeline.config import load_config
from edge_pipeline.errors import ConfigError, InputError
from edge_pipeline.measure.validate import thresholds_for, top1_accuracy, validate
from edge_pipeline.precision import Precision
from edge_pipeline.report.gating import parse_budget
from edge_pipeline.tensors import Tensors

from .test_hostile_inputs import _art, _report, invoke, json_error, one_error_line

THRESHOLDS = [(key, value) for key in ("max-accuracy-drop", "min-sqnr-db", "min-agreement")
              for value in ("nan", "inf", "-inf")] + [("min-agreement", "1.5"), ("max-accuracy-drop", "-1"),
                                                      ("max-accuracy-drop", "101")]


@pytest.mark.parametrize("key,value", THRESHOLDS, ids=[f"{k}={v}" for k, v in THRESHOLDS])
def test_a_nan_or_impossible_threshold_is_refused_naming_it(tmp_path: Path, key: str, value: str) -> None:
    (tmp_path / "edgepipe.toml").write_text(f"[validation.int8]\n{key} = {value}\n")
    with pytest.raises(ConfigError, match=rf"'validation\.int8\.{key}' must be") as info:
        load_config(cwd=tmp_path)
    assert "\n" not in str(info.value)


def test_a_nan_threshold_stops_the_build_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "edgepipe.toml").write_text("[validation.int8]\nmax-accuracy-drop = nan\n")
    one_error_line(invoke("build", "--out", tmp_path / "out"), 2, "validation.int8.max-accuracy-drop", "finite")
    assert not (tmp_path / "out").exists()


BUDGETS = ["max-size-kb=nan", "max-size-kb=inf", "max-size-kb=1e309", "max-size-kb=-5", "max-size-kb=0",
           "max-latency-ms=nan", "max-accuracy-drop=nan", "max-accuracy-drop=-1", "min-accuracy=5.0",
           "min-agreement=nan", "max-size-kb=NaN"]


@pytest.mark.parametrize("text", BUDGETS)
def test_a_nan_or_impossible_budget_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ConfigError, match=rf"budget '{text.split('=')[0]}' must be") as info:
        parse_budget(text)
    assert "\n" not in str(info.value)


def test_a_nan_budget_on_the_command_line_stops_before_any_work(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("build", "--out", tmp_path / "out", "--budget", "max-size-kb=nan", "--json")
    one_error_line(result, 2, "max-size-kb", "finite")
    json_error(result)
    assert not (tmp_path / "out").exists()


def test_a_nan_budget_in_a_target_table_is_refused(tmp_path: Path) -> None:
    (tmp_path / "edgepipe.toml").write_text("[targets.android]\nbudgets = { max-latency-ms = nan }\n")
    with pytest.raises(ConfigError, match=r"targets\.android\.budgets\.max-latency-ms.*finite"):
        load_config(cwd=tmp_path)


def test_gate_refuses_a_report_whose_budget_is_nan(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps(_report([_art("tflite", "int8")], budgets={"max-size-kb": float("nan")})))
    assert "NaN" in report.read_text()   # what a hand-edited (or foreign) report can hold
    one_error_line(invoke("gate", report), 2, "max-size-kb")


def _logits(seed: int, n: int = 400, classes: int = 10) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, classes)).astype(np.float32)


def test_a_metric_that_turns_nan_on_the_artifact_fails_it() -> None:
    reference = _logits(0)
    labels = reference.argmax(axis=1)

    def nan_on_artifact(outputs: np.ndarray, truth: np.ndarray | None) -> float | None:
        return float("nan") if outputs is not reference else top1_accuracy(outputs, truth)

    one = lambda a: Tensors(("logits",), (a,))   # noqa: E731
    result = validate(one(reference + 0.01), one(reference), thresholds_for(Precision.parse("int8")), labels,
                      ("mine", nan_on_artifact))
    assert result.passed is False and "mine is nan" in (result.message or "")
    assert result.accuracy is None and "NaN" not in json.dumps(result.to_json())


def test_a_metric_that_is_nan_on_the_source_is_an_input_error() -> None:
    from edge_pipeline.building.source_stage import source_metric
    from edge_pipeline.plugins import DataBundle
    from edge_pipeline.types import SourceSpec

    logits = _logits(1)
    data = DataBundle.single("x", logits[:1], logits[:1], logits, logits.argmax(axis=1))
    with pytest.raises(InputError, match="metric 'mine' returned nan on the source model"):
        source_metric(Tensors(("logits",), (logits,)), data, SourceSpec(), ("mine", lambda *_: float("nan")))


def test_an_output_with_no_elements_is_not_validated_as_equal() -> None:
    empty = Tensors(("features",), (np.zeros((8, 0), dtype=np.float32),))
    result = validate(empty, empty, thresholds_for(Precision.parse("fp32")))
    assert result.passed is False and "has no elements" in (result.message or "")
