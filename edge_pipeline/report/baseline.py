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

from edge_pipeline.errors import ConfigError
from edge_pipeline.report.check import check_report
from edge_pipeline.report.model import READABLE_VERSIONS, SCHEMA_VERSION, ArtifactReport, Check, Report
from edge_pipeline.types import JsonObject, JsonValue

BASELINE_KIND = "edgepipe-baseline"


@dataclass(frozen=True)
class RelativeLimits:
    max_size_growth_pct: float = 2.0
    max_accuracy_loss_pt: float = 0.3
    max_latency_growth_pct: float = 10.0


@dataclass(frozen=True)
class BaselineEntry:
    """One validated artifact as a baseline keeps it: what a later build of it is compared with."""

    size_bytes: int | None
    size_compressed_bytes: int | None = None
    sha256: str | None = None
    accuracy: float | None = None
    agreement: float | None = None
    p50: float | None = None
    p90: float | None = None
    noise: float | None = None
    threads: int | None = None
    measured_on: str | None = None

    @classmethod
    def of(cls, a: ArtifactReport) -> "BaselineEntry":
        lat = a.latency_ms
        if lat is None:
            return cls(a.size_bytes, a.size_compressed_bytes, a.sha256, a.accuracy, a.agreement,
                       measured_on=a.measured_on)
        return cls(a.size_bytes, a.size_compressed_bytes, a.sha256, a.accuracy, a.agreement, lat.p50, lat.p90,
                   lat.noise, lat.threads, a.measured_on)

    @classmethod
    def from_json(cls, data: Mapping[str, JsonValue]) -> "BaselineEntry":
        """An entry of a baseline file that check.py has checked (types, finite numbers)."""
        lat = data.get("latency_ms")
        latency = lat if isinstance(lat, dict) else {}
        return cls(_int(data.get("size_bytes")), _int(data.get("size_compressed_bytes")), _str(data.get("sha256")),
                   _num(data.get("accuracy")), _num(data.get("agreement")), _num(latency.get("p50")),
                   _num(latency.get("p90")), _num(latency.get("noise")), _int(latency.get("threads")),
                   _str(data.get("measured_on")))

    def to_json(self) -> JsonObject:
        return {"size_bytes": self.size_bytes, "size_compressed_bytes": self.size_compressed_bytes,
                "sha256": self.sha256, "accuracy": self.accuracy, "agreement": self.agreement,
                "latency_ms": {"p50": self.p50, "p90": self.p90, "noise": self.noise, "threads": self.threads},
                "measured_on": self.measured_on}


@dataclass(frozen=True)
class Baseline:
    """The baseline file: the validated artifacts of a passing build, by label (`format:precision`)."""

    target: str | None
    edgepipe_version: str | None
    artifacts: Mapping[str, BaselineEntry]
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def of(cls, report: Report) -> "Baseline":
        return cls(report.target, report.edgepipe_version,
                   {a.label: BaselineEntry.of(a) for a in report.artifacts if a.status == "ok"})

    @classmethod
    def from_json(cls, data: JsonObject) -> "Baseline":
        entries = data.get("artifacts")
        artifacts = {label: BaselineEntry.from_json(entry) for label, entry in entries.items()
                     if isinstance(entry, dict)} if isinstance(entries, dict) else {}
        version = data.get("schema_version")
        return cls(_str(data.get("target")), _str(data.get("edgepipe_version")), artifacts,
                   version if isinstance(version, int) else SCHEMA_VERSION)

    def to_json(self) -> JsonObject:
        return {"schema_version": self.schema_version, "kind": BASELINE_KIND, "target": self.target,
                "edgepipe_version": self.edgepipe_version,
                "artifacts": {label: entry.to_json() for label, entry in self.artifacts.items()}}


def load_report(path: Path, what: str = "report") -> Report | Baseline:
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
    checked = check_report(data, f"{what} {path}", BASELINE_KIND)
    return Baseline.from_json(checked) if checked.get("kind") == BASELINE_KIND else Report.from_json(checked)


def refuse_unless_passed(report: Report | Baseline, what: str) -> None:
    """A baseline must come from a complete build whose every artifact passed: a failed report is never one."""
    if isinstance(report, Baseline):
        if not report.artifacts:
            raise ConfigError(f"{what} lists no artifacts: it cannot be a baseline")
        return
    failed = [f"{a.label} {a.status}" for a in report.artifacts if a.status not in ("ok", "unvalidated")]
    status = "passed" if report.status is None else report.status
    if status != "passed" or report.passed is False or failed or not any(a.status == "ok" for a in report.artifacts):
        detail = "; ".join(failed) or "no validated artifact"
        raise ConfigError(f"{what} did not pass (status {report.status!r}: {detail}); "
                          f"a failed build is never a baseline")


def make_baseline(report: Report | Baseline) -> Baseline:
    return report if isinstance(report, Baseline) else Baseline.of(report)


def compare(report: Report, baseline: Report | Baseline, limits: RelativeLimits) -> list[Check]:
    refuse_unless_passed(baseline, "baseline")
    base = make_baseline(baseline)
    if base.target != report.target:
        raise ConfigError(f"baseline is for target '{base.target}', the report for '{report.target}'")
    current = Baseline.of(report).artifacts
    checks: list[Check] = []
    for label, old in base.artifacts.items():
        new = current.get(label)
        if new is None:
            checks.append(Check(label, "present", 1, 0, False, f"{label}: in the baseline but not built (or failed)",
                                "baseline"))
            continue
        checks.append(_growth(label, "size_growth_pct", old.size_bytes, new.size_bytes, limits.max_size_growth_pct))
        if old.accuracy is not None and new.accuracy is not None:
            loss = (old.accuracy - new.accuracy) * 100
            checks.append(Check(label, "accuracy_loss_pt", limits.max_accuracy_loss_pt, loss,
                                loss <= limits.max_accuracy_loss_pt,
                                f"{label}: accuracy {new.accuracy:.4f} vs baseline {old.accuracy:.4f} "
                                f"({loss:+.2f} pt, limit {limits.max_accuracy_loss_pt:g} pt)", "baseline"))
        checks.append(_latency(label, old, new, limits.max_latency_growth_pct))
    return checks


def _growth(label: str, metric: str, old: int | None, new: int | None, limit: float) -> Check:
    if old is None or new is None:
        return Check(label, metric, limit, None, False, f"{label}: size not recorded in both reports", "baseline")
    growth = (new - old) / old * 100 if old else 0.0
    return Check(label, metric, limit, growth, growth <= limit,
                 f"{label}: size {new:,} B vs baseline {old:,} B ({growth:+.2f}%, limit +{limit:g}%)", "baseline")


def _latency(label: str, old: BaselineEntry, new: BaselineEntry, limit: float) -> Check:
    metric = "latency_p50_growth_pct"
    if old.measured_on != new.measured_on:
        return Check(label, metric, limit, None, True,
                     f"{label}: latency not compared: measured on different machines or settings "
                     f"('{new.measured_on}' vs baseline '{old.measured_on}')", "skipped")
    before, after = old.p50, new.p50
    if before is None or after is None:
        return Check(label, metric, limit, None, True, f"{label}: latency not measured in both reports", "skipped")
    growth = (after - before) / before * 100
    noise = 2 * math.hypot(old.noise or 0.0, new.noise or 0.0)
    within_noise = abs(after - before) <= noise
    passed = growth <= limit or within_noise
    note = f", within noise ±{noise:.3g} ms" if within_noise and growth > limit else ""
    return Check(label, metric, limit, growth, passed,
                 f"{label}: p50 {after:.4g} ms vs baseline {before:.4g} ms ({growth:+.1f}%, limit +{limit:g}%{note})",
                 "baseline")


def _num(value: JsonValue) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int(value: JsonValue) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: JsonValue) -> str | None:
    return value if isinstance(value, str) else None
