"""Numerical validation of an artifact against its float source, with per-precision tolerances."""
from __future__ import annotations

from typing import Any

import numpy as np

# min top-1 agreement with the source, and max |diff| relative to the source's largest |output|
DEFAULT_TOLERANCES: dict[str, dict[str, float]] = {
    "fp32": {"min_agreement": 0.99, "max_relative_diff": 1e-3},
    "fp16": {"min_agreement": 0.98, "max_relative_diff": 2e-2},
    # quantized: the diff limit applies to the 99th percentile of per-sample worst diffs, so a few inputs near an
    # outlier do not refuse an artifact whose top-1 agrees on 99% of real samples; systematic errors still fail
    "int8": {"min_agreement": 0.95, "max_relative_diff": 0.15, "diff_quantile": 0.99},
    "int8-dynamic": {"min_agreement": 0.95, "max_relative_diff": 0.15, "diff_quantile": 0.99},
    "int8-weight": {"min_agreement": 0.95, "max_relative_diff": 0.15, "diff_quantile": 0.99},
    "int16x8": {"min_agreement": 0.95, "max_relative_diff": 0.15, "diff_quantile": 0.99},
    "uint8": {"min_agreement": 0.95, "max_relative_diff": 0.15, "diff_quantile": 0.99},
    "int4": {"min_agreement": 0.90, "max_relative_diff": 0.3, "diff_quantile": 0.99},
}


def tolerance_for(precision: str, overrides: dict[str, dict[str, float]] | None = None) -> dict[str, float]:
    base = dict(DEFAULT_TOLERANCES.get(precision, DEFAULT_TOLERANCES["int8"]))
    base.update((overrides or {}).get(precision, {}))
    return base


def top1_accuracy(outputs: np.ndarray, labels: np.ndarray | None) -> float | None:
    if labels is None or outputs.ndim != 2:
        return None
    return float((outputs.argmax(axis=1) == labels).mean())


def compare(outputs: np.ndarray, reference: np.ndarray, tolerance: dict[str, float]) -> dict[str, Any]:
    """Agreement and diffs; `passed` is False with a message saying by how much it missed."""
    if outputs.shape != reference.shape:
        return {"passed": False, "message": f"output shape {list(outputs.shape)} differs from the source's "
                                            f"{list(reference.shape)}"}
    diff = np.abs(outputs.astype(np.float64) - reference.astype(np.float64))
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(reference).max()) or 1.0
    quantile = tolerance.get("diff_quantile", 1.0)
    per_sample = diff.reshape(len(diff), -1).max(axis=1) if diff.ndim >= 1 and diff.size else np.zeros(1)
    checked = float(np.quantile(per_sample, quantile)) if quantile < 1.0 else max_abs
    relative = checked / scale
    agreement = float((outputs.argmax(axis=-1) == reference.argmax(axis=-1)).mean()) if outputs.ndim >= 2 else 1.0
    if not np.all(np.isfinite(outputs)):
        return {"passed": False, "agreement": agreement, "max_abs_diff": max_abs, "relative_diff": None,
                "message": "outputs contain NaN or infinity"}
    problems = []
    if agreement < tolerance["min_agreement"]:
        problems.append(f"top-1 agreement {agreement:.4f} < {tolerance['min_agreement']} required")
    if relative > tolerance["max_relative_diff"]:
        what = "max abs diff" if quantile >= 1.0 else f"p{quantile * 100:g} of per-sample max abs diffs"
        problems.append(f"{what} {checked:.4g} is {relative:.3g} of the output range "
                        f"> {tolerance['max_relative_diff']} allowed")
    return {"passed": not problems, "agreement": agreement, "max_abs_diff": max_abs, "relative_diff": relative,
            "tolerance": tolerance, "message": "; ".join(problems) or None}
