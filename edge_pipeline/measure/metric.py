"""The task metric a build judges artifacts by: top1 / top5, or the user's own function."""
from __future__ import annotations

from typing import SupportsFloat

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.measure.validate import BUILTIN_METRICS, Metric
from edge_pipeline.sources.user_code import call_user, resolve_callable
from edge_pipeline.types import FEATURE_EXTRACTION, SourceSpec


def load_metric(spec: SourceSpec, task: str | None = None) -> tuple[str, Metric]:
    """top1 / top5 / retrieval, or the user's `package.module:function` (outputs, labels) -> float, higher is
    better. An encoder (`feature-extraction`) left on the default metric is judged by retrieval."""
    if task == FEATURE_EXTRACTION and spec.metric == "top1":
        return "retrieval", BUILTIN_METRICS["retrieval"]
    if spec.metric in BUILTIN_METRICS:
        return spec.metric, BUILTIN_METRICS[spec.metric]
    function = resolve_callable(spec.metric, "metric", spec.base_dir)

    def metric(outputs: np.ndarray, labels: np.ndarray | None) -> float | None:
        if labels is None:
            return None
        value = call_user(function, spec.metric, "metric", outputs, labels)
        try:
            if isinstance(value, SupportsFloat):   # a number, numpy scalar or one-element tensor
                return float(value)
        except (TypeError, ValueError):
            pass
        raise InputError(f"metric '{spec.metric}' returned {type(value).__name__}, expected a number")
    return spec.metric, metric
