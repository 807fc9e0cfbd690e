"""Validation arithmetic and budget checks on real arrays and report entries."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edge_pipeline.errors import ConfigError
from edge_pipeline.measure.validate import thresholds_for, top1_accuracy, validate, wilson
from edge_pipeline.precision import Precision, Thresholds
from edge_pipeline.report.gating import check_budgets
from edge_pipeline.report.model import ArtifactReport
from edge_pipeline.tensors import Tensors

REF = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 1.0], [0.0, 0.5, 4.0], [1.0, 1.5, 0.0]], dtype=np.float32)


def one(array: np.ndarray, name: str = "logits") -> Tensors:
    return Tensors((name,), (array,))


def validated(outputs: Tensors, reference: Tensors, thresholds: Thresholds, labels: np.ndarray | None = None) -> dict:
    """validate()'s typed Validation as report.json holds it."""
    return validate(outputs, reference, thresholds, labels).to_json()


def check(outputs: np.ndarray, reference: np.ndarray, precision: str, labels: np.ndarray | None = None) -> dict:
    return validated(one(outputs), one(reference), thresholds_for(Precision.parse(precision)), labels)


def test_identical_outputs_pass() -> None:
    result = check(REF.copy(), REF, "fp32")
    assert result["passed"] and result["agreement"] == 1.0 and result["max_abs_diff"] == 0.0
    (entry,) = result["outputs"]
    assert entry["name"] == "logits" and entry["classification"] and entry["sqnr_db"] is None   # no error at all


def test_fp32_error_beyond_its_sqnr_fails_and_says_by_how_much() -> None:
    off = REF.copy()
    off[0, 0] += 0.5
    result = check(off, REF, "fp32")
    assert not result["passed"]
    assert "output 'logits' SQNR" in result["message"] and "< 40 dB required" in result["message"]


def test_int8_tolerates_small_diffs_but_not_flipped_predictions() -> None:
    noisy = REF + 0.05
    assert check(noisy, REF, "int8")["passed"]
    flipped = REF[:, ::-1].copy()
    result = check(flipped, REF, "int8")
    assert not result["passed"] and "top-1 agreement" in result["message"]


def test_silently_wrong_huge_outputs_fail() -> None:
    """The torchao weight-only trap: errors around 1e9 must never pass as int8, labelled or not."""
    wrong = REF * 1e9
    assert not check(wrong, REF, "int8")["passed"]
    result = check(wrong, REF, "int8", labels=REF.argmax(axis=1))
    assert not result["passed"] and "collapsed" in result["message"]


def test_nan_and_shape_mismatch_fail() -> None:
    nan = REF.copy()
    nan[1, 1] = np.nan
    assert check(nan, REF, "fp32")["message"] == "output 'logits' contains NaN or infinity"
    assert "has shape [2, 3]" in check(REF[:2], REF, "fp32")["message"]


def test_wide_logits_int8_judged_by_agreement_and_sqnr_not_by_max_diff() -> None:
    """Logits spanning ~400: large absolute errors in very negative logits no decision reads."""
    rng = np.random.default_rng(0)
    ref = (rng.standard_normal((500, 10)) * 80).astype(np.float32)
    test = ref + rng.normal(0, 0.5, ref.shape).astype(np.float32)     # small noise: rankings kept
    test[ref < -100] += 30.0                                           # big errors where nothing is decided
    labels = ref.argmax(axis=1)
    for given in (None, labels):
        result = check(test, ref, "int8", given)
        assert result["passed"], result["message"]
        assert result["max_abs_diff"] > 25 and result["outputs"][0]["sqnr_db"] > 10


def test_labelled_int8_is_decided_by_the_metric_drop_with_the_budget() -> None:
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((400, 10)).astype(np.float32) * 4
    labels = ref.argmax(axis=1)
    worse = ref.copy()
    worse[:20] = worse[:20, ::-1]                                      # 5% of predictions change
    budget = thresholds_for(Precision.parse("int8"), accuracy_budget=1.0)
    result = validated(one(worse), one(ref), budget, labels)
    assert not result["passed"] and "top1 drop 5.00 pt > 1 pt allowed (target budget)" in result["message"]
    loose = thresholds_for(Precision.parse("int8"), accuracy_budget=6.0)
    assert validated(one(worse), one(ref), loose, labels)["passed"]
    assert result["accuracy_ci95"][0] < 0.95 < result["accuracy_ci95"][1]


def test_every_output_is_validated_and_a_regression_output_by_sqnr() -> None:
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((300, 10)).astype(np.float32)
    boxes = rng.random((300, 4)).astype(np.float32)
    reference = Tensors(("logits", "boxes"), (logits, boxes))
    good = validated(Tensors(reference.names, (logits + 0.01, boxes + 0.001)), reference,
                     thresholds_for(Precision.parse("int8")))
    assert good["passed"] and [o["name"] for o in good["outputs"]] == ["logits", "boxes"]
    assert good["outputs"][0]["decides"] and not good["outputs"][1]["decides"]   # boxes: SQNR judges, not argmax
    broken = validated(Tensors(reference.names, (logits, rng.random((300, 4)).astype(np.float32))), reference,
                      thresholds_for(Precision.parse("int8")), labels=logits.argmax(axis=1))
    assert not broken["passed"] and "output 'boxes'" in broken["message"] and "output 'logits'" not in broken["message"]


def test_a_score_output_gets_no_meaningless_agreement() -> None:
    score = np.random.default_rng(3).random((50, 1)).astype(np.float32)
    int8 = thresholds_for(Precision.parse("int8"))
    (entry,) = validated(one(score + 0.001, "score"), one(score, "score"), int8)["outputs"]
    assert entry["classification"] is False and "agreement" not in entry


def test_small_evaluation_sets_warn_with_the_interval() -> None:
    result = check(REF.copy(), REF, "int8")
    (warning,) = result["warnings"]
    assert "only 4 evaluation samples" in warning and "95% interval" in warning


def test_wilson_interval() -> None:
    assert wilson(5, 5)[0] < 0.6 and wilson(5, 5)[1] == 1.0
    low, high = wilson(950, 1000)
    assert 0.93 < low < 0.95 < high < 0.97


def test_unknown_precision_has_no_silent_default() -> None:
    with pytest.raises(ConfigError):
        thresholds_for(Precision.parse("int3"))


def test_top1_accuracy() -> None:
    assert top1_accuracy(REF, np.array([1, 0, 2, 0])) == 0.75
    assert top1_accuracy(REF, None) is None


def artifact(fmt: str, size: int, drop: float, p50: float, status: str = "ok") -> ArtifactReport:
    return ArtifactReport.from_json({"format": fmt, "precision": "int8", "status": status, "size_bytes": size,
                                     "accuracy_drop": drop, "latency_ms": {"p50": p50}})


def test_budgets_name_artifact_metric_limit_and_value() -> None:
    arts = [artifact("tflite", 2048, 0.2, 1.0), artifact("pte", 4096, 1.5, 3.0),
            artifact("bad", 10**9, 50, 99, status="failed")]
    checks = check_budgets({"max-size-kb": 3, "max-accuracy-drop": 1.0, "max-latency-ms": 2.0}, arts)
    failed = {(c.artifact, c.metric) for c in checks if not c.passed}
    assert failed == {("pte:int8", "size_kb"), ("pte:int8", "accuracy_drop_pt"), ("pte:int8", "latency_p50_ms")}
    size_fail = next(c for c in checks if c.artifact == "pte:int8" and c.metric == "size_kb")
    assert size_fail.message == "pte:int8: size_kb = 4 exceeds limit 3" and size_fail.limit == 3
    assert len(checks) == 6   # failed artifacts are reported by their stage, not gated


def test_unmeasured_metric_fails_its_budget() -> None:
    (check,) = check_budgets({"max-latency-ms": 1.0}, [replace(artifact("pte", 1, 0, 1), latency_ms=None)])
    assert not check.passed and "not measured" in check.message


def test_labels_the_source_cannot_predict_do_not_decide() -> None:
    """An untrained source at chance on its labels: a broken artifact is at chance too, so the drop says
    nothing; agreement and SQNR decide (and the report says why)."""
    rng = np.random.default_rng(4)
    ref = rng.standard_normal((300, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 300)
    shuffled = ref[rng.permutation(300)]
    result = validated(one(shuffled), one(ref), thresholds_for(Precision.parse("int8")), labels)
    assert not result["passed"] and "agreement" in result["message"]
    assert any("chance level" in w for w in result["warnings"]) and "no labels" in result["decided_by"]
