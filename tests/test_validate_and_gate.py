"""Validation arithmetic and budget checks on real arrays and report entries."""
from __future__ import annotations

import numpy as np

from edge_pipeline.gating import check_budgets
from edge_pipeline.validate import compare, tolerance_for, top1_accuracy

REF = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 1.0], [0.0, 0.5, 4.0], [1.0, 1.5, 0.0]], dtype=np.float32)


def test_identical_outputs_pass() -> None:
    result = compare(REF.copy(), REF, tolerance_for("fp32"))
    assert result["passed"] and result["agreement"] == 1.0 and result["max_abs_diff"] == 0.0


def test_fp32_diff_beyond_tolerance_fails_and_says_by_how_much() -> None:
    off = REF.copy()
    off[0, 0] += 0.5
    result = compare(off, REF, tolerance_for("fp32"))
    assert not result["passed"]
    assert "max abs diff 0.5" in result["message"] and "0.125 of the output range" in result["message"]


def test_int8_tolerates_small_diffs_but_not_flipped_predictions() -> None:
    noisy = REF + 0.05
    assert compare(noisy, REF, tolerance_for("int8"))["passed"]
    flipped = REF[:, ::-1].copy()
    result = compare(flipped, REF, tolerance_for("int8"))
    assert not result["passed"] and "agreement 0.5000 < 0.95" in result["message"]


def test_silently_wrong_huge_outputs_fail() -> None:
    """The torchao weight-only trap: errors around 1e9 must never pass as int8."""
    wrong = REF * 1e9
    assert not compare(wrong, REF, tolerance_for("int8"))["passed"]


def test_nan_and_shape_mismatch_fail() -> None:
    nan = REF.copy()
    nan[1, 1] = np.nan
    assert compare(nan, REF, tolerance_for("fp32"))["message"] == "outputs contain NaN or infinity"
    assert "output shape" in compare(REF[:2], REF, tolerance_for("fp32"))["message"]


def test_top1_accuracy() -> None:
    assert top1_accuracy(REF, np.array([1, 0, 2, 0])) == 0.75
    assert top1_accuracy(REF, None) is None


def artifact(fmt: str, size: int, drop: float, p50: float, status: str = "ok") -> dict:
    return {"format": fmt, "precision": "int8", "status": status, "size_bytes": size,
            "accuracy_drop": drop, "latency_ms": {"p50": p50}}


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
    (check,) = check_budgets({"max-latency-ms": 1.0}, [{**artifact("pte", 1, 0, 0), "latency_ms": None}])
    assert not check.passed and "not measured" in check.message


def test_int8_diff_limit_is_on_the_99th_percentile_not_one_outlier() -> None:
    """Over many real samples one input near an outlier may differ a lot; a systematic error may not."""
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((1000, 10)).astype(np.float32) * 4
    one_outlier = ref + 0.05
    one_outlier[7] += np.where(np.arange(10) == ref[7].argmax(), 3.0, 0.0)   # same top-1, a big diff on one sample
    result = compare(one_outlier, ref, tolerance_for("int8"))
    assert result["passed"] and result["max_abs_diff"] > 3.0
    systematic = ref + np.where(rng.random(ref.shape) < 0.2, 3.0, 0.0)        # 20% of values off on most samples
    failed = compare(systematic, ref, tolerance_for("int8"))
    assert not failed["passed"] and "p99 of per-sample max abs diffs" in failed["message"]
