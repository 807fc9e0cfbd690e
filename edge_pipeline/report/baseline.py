"""Baselines: a trimmed report a team commits, and relative checks of a new report against it.

Latency is compared only between reports measured on the same `measured_on`; across machines the check is
refused (reported as skipped), never silently compared. A latency difference inside the measured noise of
both runs is not a regression."""
from __future__ import annotations

import json
import math
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from edge_pipeline.errors import ConfigError
from edge_pipeline.numbers import FRACTION, POSITIVE, Range, finite
from edge_pipeline.paths import plain_name
from edge_pipeline.report.gating import validate_budget
from edge_pipeline.report.model import (
    BUILTIN_METRICS,
    READABLE_VERSIONS,
    SCHEMA_VERSION,
    ArtifactReport,
    Check,
    CheckKind,
    JsonMap,
    Latency,
    Part,
    Report,
)
from edge_pipeline.report.strict import ReportFieldError, conform, in_range
from edge_pipeline.types import JsonObject, JsonValue

BASELINE_KIND = "edgepipe-baseline"
TOKEN_AGREEMENT = "token_agreement"   # a language model's entry: accuracy is its agreement, p50 its ms per token
MAX_REPORT_BYTES = 256 * 2**20      # a report of thousands of artifacts is a few MiB
GROWTH = Range(-100.0, 1e6)         # percent or points: below -100 nothing could pass


@dataclass(frozen=True)
class RelativeLimits:
    """How far a build may move from its baseline; each a finite number (a NaN limit would read as met)."""

    max_size_growth_pct: float = 2.0
    max_accuracy_loss_pt: float = 0.3
    max_latency_growth_pct: float = 10.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            option = "--" + name.removesuffix("_pct").removesuffix("_pt").replace("_", "-")
            object.__setattr__(self, name, finite(value, option, GROWTH))


@dataclass(frozen=True, kw_only=True)
class BaselineArtifact(Part):
    """One entry of a baseline file as written: read as strictly as a report's artifact (strict.py)."""

    REQUIRED = ("size_bytes", "latency_ms")
    RANGES = {"size_bytes": POSITIVE, "size_compressed_bytes": POSITIVE, "agreement": FRACTION}
    size_bytes: int | None = None
    size_compressed_bytes: int | None = None
    sha256: str | None = None
    accuracy: float | None = None
    agreement: float | None = None
    latency_ms: Latency | None = None
    measured_on: str | None = None
    metric: str | None = None

    def check_read(self, path: str) -> None:
        if self.metric in (*BUILTIN_METRICS, TOKEN_AGREEMENT):
            in_range(path, {"accuracy": (self.accuracy, FRACTION)})


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
    metric: str | None = None

    @classmethod
    def of(cls, a: ArtifactReport | BaselineArtifact) -> "BaselineEntry":
        lat = a.latency_ms or Latency()
        metric = a.metric if isinstance(a, BaselineArtifact) else a.validation.metric if a.validation else None
        g = a.generation if isinstance(a, ArtifactReport) else None
        if g is not None and g.decode_tokens_per_s:   # a language model: its agreement, its time per decoded token
            per_token = round(1000 / g.decode_tokens_per_s, 6)
            return cls(a.size_bytes, a.size_compressed_bytes, a.sha256, g.token_agreement, g.token_agreement,
                       per_token, per_token, g.decode_ms_per_token_noise, None, g.measured_on, TOKEN_AGREEMENT)
        return cls(a.size_bytes, a.size_compressed_bytes, a.sha256, a.accuracy, a.agreement, lat.p50, lat.p90,
                   lat.noise, lat.threads, a.measured_on, metric)

    def to_json(self) -> JsonObject:
        entry: JsonObject = {
            "size_bytes": self.size_bytes, "size_compressed_bytes": self.size_compressed_bytes, "sha256": self.sha256,
            "accuracy": self.accuracy, "agreement": self.agreement,
            "latency_ms": {"p50": self.p50, "p90": self.p90, "noise": self.noise, "threads": self.threads},
            "measured_on": self.measured_on}
        return {**entry, "metric": self.metric} if self.metric is not None else entry


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
    def from_json(cls, data: JsonMap) -> "Baseline":
        """A baseline file, every entry read strictly; a wrong field is a ReportFieldError naming its path."""
        version = conform(int, data.get("schema_version"), "schema_version")
        if version not in READABLE_VERSIONS:
            raise ReportFieldError(f"schema_version is {version}; this edgepipe reads versions "
                                   f"{' and '.join(map(str, READABLE_VERSIONS))}. Update the baseline")
        entries = data.get("artifacts")
        if not isinstance(entries, dict) or not entries:
            raise ReportFieldError(f"artifacts must be a non-empty object, got {type(entries).__name__}")
        artifacts = {label: BaselineEntry.of(BaselineArtifact.from_json(
            conform(JsonMap, entry, f"artifacts.{label}"), f"artifacts.{label}"))   # type: ignore[arg-type]
            for label, entry in entries.items()}
        return cls(conform(str | None, data.get("target"), "target"),   # type: ignore[arg-type]
                   conform(str | None, data.get("edgepipe_version"), "edgepipe_version"),  # type: ignore[arg-type]
                   artifacts, version)

    def to_json(self) -> JsonObject:
        return {"schema_version": self.schema_version, "kind": BASELINE_KIND, "target": self.target,
                "edgepipe_version": self.edgepipe_version,
                "artifacts": {label: entry.to_json() for label, entry in self.artifacts.items()}}


def load_report(path: Path, what: str = "report") -> Report | Baseline:
    """A report or baseline file, read strictly: a missing, unreadable, truncated or oversized file, another
    version, or any field of the wrong type or outside its range is a usage error (exit 2) naming the file and
    the field's JSON path."""
    where = f"{what} {path}"
    data = read_json_file(path, what)
    if not isinstance(data, dict) or "schema_version" not in data or "target" not in data:
        raise ConfigError(f"{where} is not an edgepipe report or baseline")
    try:
        loaded: Report | Baseline
        if data.get("kind") == BASELINE_KIND:
            loaded = Baseline.from_json(data)
        else:
            loaded = Report.from_json(data)
            for name, limit in loaded.budgets.items():
                validate_budget(name, limit, f"{where}: budgets.{name}")
    except ReportFieldError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    plain_name(loaded.target, f"{where}: 'target'")
    return loaded


def read_json_file(path: Path, what: str) -> JsonValue:
    """The JSON in `path`, bounded in size. A bare NaN or Infinity (not JSON, but Python writes them) is parsed
    here and refused by the strict reader, which names its path."""
    try:
        info = path.stat()
    except OSError:
        raise ConfigError(f"{what} not found: {path}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{what} {path} is not a regular file")
    if info.st_size > MAX_REPORT_BYTES:
        raise ConfigError(f"{what} {path} is {info.st_size / 2**20:.0f} MiB: larger than any edgepipe report "
                          f"({MAX_REPORT_BYTES // 2**20} MiB)")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not a JSON text (byte {exc.start} is not UTF-8)") from exc
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ConfigError(f"{what} {path} is not valid JSON (truncated?): {str(exc)[:200]}") from exc


def refuse_unless_passed(report: Report | Baseline, what: str) -> None:
    """A baseline must come from a complete build whose every artifact passed: a failed report is never one."""
    if isinstance(report, Baseline):
        if not report.artifacts:
            raise ConfigError(f"{what} lists no artifacts: it cannot be a baseline")
        return
    failed = [f"{a.label} {a.status}" for a in report.artifacts if a.status not in ("ok", "unvalidated")]
    validated = any(a.status == "ok" for a in report.artifacts)
    if report.status != "passed" or report.passed is False or failed or not validated:
        detail = "; ".join(failed) or ("no validated artifact" if not validated else "a budget or check failed")
        raise ConfigError(f"{what} did not pass (status {report.status}: {detail}); a failed build is never a "
                          f"baseline")


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
                                CheckKind.BASELINE))
            continue
        checks.append(_growth(label, "size_growth_pct", old.size_bytes, new.size_bytes, limits.max_size_growth_pct))
        checks.append(_accuracy(label, old, new, limits.max_accuracy_loss_pt))
        checks.append(_latency(label, old, new, limits.max_latency_growth_pct))
    return checks


def _accuracy(label: str, old: BaselineEntry, new: BaselineEntry, limit: float) -> Check:
    """Loss in percentage points for top-1/top-5; in the metric's own units for a custom metric. A baseline
    accuracy the new build did not measure fails: the check cannot be computed, so it is not met."""
    metric = "accuracy_loss_pt"
    if old.accuracy is None:
        return Check(label, metric, limit, None, True, f"{label}: the baseline has no accuracy to compare with",
                     CheckKind.SKIPPED)
    if new.accuracy is None:
        return Check(label, metric, limit, None, False, f"{label}: accuracy was not measured (baseline "
                     f"{old.accuracy:.4f}): the loss cannot be computed", CheckKind.BASELINE)
    points = new.metric in (None, *BUILTIN_METRICS, TOKEN_AGREEMENT)
    loss = (old.accuracy - new.accuracy) * (100 if points else 1)
    unit = " pt" if points else f" ({new.metric})"
    what = "token agreement" if new.metric == TOKEN_AGREEMENT else "accuracy"
    return Check(label, metric, limit, loss, loss <= limit, f"{label}: {what} {new.accuracy:.4f} vs baseline "
                 f"{old.accuracy:.4f} ({loss:+.2f}{unit}, limit {limit:g}{unit})", CheckKind.BASELINE)


def _growth(label: str, metric: str, old: int | None, new: int | None, limit: float) -> Check:
    if old is None or new is None:
        return Check(label, metric, limit, None, False, f"{label}: size not recorded in both reports",
                     CheckKind.BASELINE)
    growth = (new - old) / old * 100     # sizes read from a file are > 0 (strict.py)
    return Check(label, metric, limit, growth, growth <= limit,
                 f"{label}: size {new:,} B vs baseline {old:,} B ({growth:+.2f}%, limit +{limit:g}%)",
                 CheckKind.BASELINE)


def _latency(label: str, old: BaselineEntry, new: BaselineEntry, limit: float) -> Check:
    metric = "latency_p50_growth_pct"
    if old.measured_on != new.measured_on:
        return Check(label, metric, limit, None, True,
                     f"{label}: latency not compared: measured on different machines or settings "
                     f"('{new.measured_on}' vs baseline '{old.measured_on}')", CheckKind.SKIPPED)
    before, after = old.p50, new.p50
    if before is None or after is None:
        return Check(label, metric, limit, None, True, f"{label}: latency not measured in both reports",
                     CheckKind.SKIPPED)
    growth = (after - before) / before * 100
    noise = 2 * math.hypot(old.noise or 0.0, new.noise or 0.0)
    within_noise = abs(after - before) <= noise
    passed = growth <= limit or within_noise
    note = f", within noise ±{noise:.3g} ms" if within_noise and growth > limit else ""
    what = "decode time per token" if new.metric == TOKEN_AGREEMENT else "p50"
    return Check(label, metric, limit, growth, passed,
                 f"{label}: {what} {after:.4g} ms vs baseline {before:.4g} ms ({growth:+.1f}%, "
                 f"limit +{limit:g}%{note})", CheckKind.BASELINE)
