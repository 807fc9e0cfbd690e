"""Baselines: a trimmed report a team commits, and relative checks of a new report against it.

Latency is compared only between reports measured on the same `measured_on`; across machines the check is
refused (reported as skipped), never silently compared. A latency difference inside the measured noise of
both runs is not a regression."""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_pipeline.errors import ConfigError
from edge_pipeline.report.check import check_report
from edge_pipeline.report.model import READABLE_VERSIONS, SCHEMA_VERSION, Check, Report, as_report

BASELINE_KIND = "edgepipe-baseline"


@dataclass(frozen=True)
class RelativeLimits:
    max_size_growth_pct: float = 2.0
    max_accuracy_loss_pt: float = 0.3
    max_latency_growth_pct: float = 10.0


def load_report(path: Path, what: str = "report") -> dict[str, Any]:
    """A report or baseline file; missing, unreadable, truncated, mis-shaped or other-version files are usage
    errors (exit 2) that name the file and the first bad field."""
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not a JSON text (byte {exc.start} is not UTF-8)") from exc
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ConfigError(f"{what} {path} is not valid JSON (truncated?): {str(exc)[:200]}") from exc
    if not isinstance(data, dict) or "schema_version" not in data or "target" not in data:
        raise ConfigError(f"{what} {path} is not an edgepipe report or baseline")
    if data["schema_version"] not in READABLE_VERSIONS or isinstance(data["schema_version"], bool):
        raise ConfigError(f"{what} {path} has schema version {data['schema_version']!r:.40}; this edgepipe reads "
                          f"versions {' and '.join(map(str, READABLE_VERSIONS))}. Rebuild it, or update the baseline")
    return check_report(data, f"{what} {path}", BASELINE_KIND)


def is_baseline(data: "Report | Mapping[str, Any]") -> bool:
    """A baseline file (its own trimmed shape), as opposed to a report."""
    return isinstance(data, Mapping) and data.get("kind") == BASELINE_KIND


def refuse_unless_passed(report: "Report | Mapping[str, Any]", what: str) -> None:
    """A baseline must come from a complete build whose every artifact passed: a failed report is never one."""
    if is_baseline(report):
        if not report.get("artifacts"):
            raise ConfigError(f"{what} lists no artifacts: it cannot be a baseline")
        return
    typed = as_report(report)
    failed = [f"{a.label} {a.status}" for a in typed.artifacts if a.status not in ("ok", "unvalidated")]
    status = "passed" if typed.status is None else typed.status
    if status != "passed" or typed.passed is False or failed or not any(a.status == "ok" for a in typed.artifacts):
        detail = "; ".join(failed) or "no validated artifact"
        raise ConfigError(f"{what} did not pass (status {typed.status!r}: {detail}); "
                          f"a failed build is never a baseline")


def make_baseline(report: "Report | Mapping[str, Any]") -> dict[str, Any]:
    if is_baseline(report):
        return dict(report)
    typed = as_report(report)
    artifacts = {}
    for a in typed.artifacts:
        if a.status != "ok":
            continue
        latency = a.latency_ms
        artifacts[a.label] = {
            "size_bytes": a.size_bytes, "size_compressed_bytes": a.size_compressed_bytes,
            "sha256": a.sha256, "accuracy": a.accuracy, "agreement": a.agreement,
            "latency_ms": {k: getattr(latency, k) if latency is not None else None
                           for k in ("p50", "p90", "noise", "threads")},
            "measured_on": a.measured_on}
    return {"schema_version": SCHEMA_VERSION, "kind": BASELINE_KIND, "target": typed.target,
            "edgepipe_version": typed.edgepipe_version, "artifacts": artifacts}


def compare(report: "Report | Mapping[str, Any]", baseline: "Report | Mapping[str, Any]",
            limits: RelativeLimits) -> list[Check]:
    refuse_unless_passed(baseline, "baseline")
    base = make_baseline(baseline)
    target = as_report(report).target
    if base["target"] != target:
        raise ConfigError(f"baseline is for target '{base['target']}', the report for '{target}'")
    current = make_baseline(report)["artifacts"]
    checks: list[Check] = []
    for label, old in base["artifacts"].items():
        new = current.get(label)
        if new is None:
            checks.append(Check(label, "present", 1, 0, False, f"{label}: in the baseline but not built (or failed)", "baseline"))
            continue
        checks.append(_growth(label, "size_growth_pct", old["size_bytes"], new["size_bytes"], limits.max_size_growth_pct))
        if old.get("accuracy") is not None and new.get("accuracy") is not None:
            loss = (old["accuracy"] - new["accuracy"]) * 100
            checks.append(Check(label, "accuracy_loss_pt", limits.max_accuracy_loss_pt, loss,
                                loss <= limits.max_accuracy_loss_pt,
                                f"{label}: accuracy {new['accuracy']:.4f} vs baseline {old['accuracy']:.4f} "
                                f"({loss:+.2f} pt, limit {limits.max_accuracy_loss_pt:g} pt)", "baseline"))
        checks.append(_latency(label, old, new, limits.max_latency_growth_pct))
    return checks


def _growth(label: str, metric: str, old: float, new: float, limit: float) -> Check:
    growth = (new - old) / old * 100 if old else 0.0
    return Check(label, metric, limit, growth, growth <= limit,
                 f"{label}: size {new:,} B vs baseline {old:,} B ({growth:+.2f}%, limit +{limit:g}%)", "baseline")


def _latency(label: str, old: dict[str, Any], new: dict[str, Any], limit: float) -> Check:
    metric = "latency_p50_growth_pct"
    if old.get("measured_on") != new.get("measured_on"):
        return Check(label, metric, limit, None, True,
                     f"{label}: latency not compared: measured on different machines or settings "
                     f"('{new.get('measured_on')}' vs baseline '{old.get('measured_on')}')", "skipped")
    before, after = old["latency_ms"]["p50"], new["latency_ms"]["p50"]
    if before is None or after is None:
        return Check(label, metric, limit, None, True, f"{label}: latency not measured in both reports", "skipped")
    growth = (after - before) / before * 100
    noise = 2 * math.hypot(old["latency_ms"].get("noise") or 0.0, new["latency_ms"].get("noise") or 0.0)
    within_noise = abs(after - before) <= noise
    passed = growth <= limit or within_noise
    note = f", within noise ±{noise:.3g} ms" if within_noise and growth > limit else ""
    return Check(label, metric, limit, growth, passed,
                 f"{label}: p50 {after:.4g} ms vs baseline {before:.4g} ms ({growth:+.1f}%, limit +{limit:g}%{note})",
                 "baseline")
