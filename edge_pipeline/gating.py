"""Budget checks over a report's artifacts. Each check names artifact, metric, limit and value."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .types import Budgets


@dataclass(frozen=True)
class Check:
    artifact: str
    metric: str
    limit: float
    value: float | None
    passed: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


METRICS = {
    "max_size_kb": ("size_kb", lambda a: a["size_bytes"] / 1024 if a.get("size_bytes") is not None else None),
    "max_accuracy_drop": ("accuracy_drop_pt", lambda a: a.get("accuracy_drop")),
    "max_latency_ms": ("latency_p50_ms", lambda a: (a.get("latency_ms") or {}).get("p50")),
}


def check_budgets(budgets: Budgets, artifacts: list[dict[str, Any]]) -> list[Check]:
    checks: list[Check] = []
    for field, (metric, read) in METRICS.items():
        limit = getattr(budgets, field)
        if limit is None:
            continue
        for artifact in artifacts:
            if artifact.get("status") != "ok":
                continue
            label = f"{artifact['format']}:{artifact['precision']}"
            value = read(artifact)
            passed = value is not None and value <= limit
            shown = "not measured" if value is None else f"{value:.4g}"
            verdict = "within" if passed else "exceeds"
            checks.append(Check(label, metric, float(limit), value, passed,
                                f"{label}: {metric} = {shown} {verdict} limit {limit:g}"))
    return checks
