"""Budget checks (absolute limits) over a report's artifacts. Each check names artifact, metric, limit
and value. Latency is noise-aware: a p50 only fails its budget when it exceeds the limit by more than the
noise measured across repeats.

Checks fail closed: `completeness_checks` fails a report with a failed artifact (or none validated) before any
budget is read, so a budget never passes for want of artifacts to check; an `unvalidated` artifact (kept on
purpose, e.g. Core ML on a host that cannot run it) is held to its size budgets and the rest are listed as
skipped, never silently dropped."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from edge_pipeline.errors import ConfigError
from edge_pipeline.numbers import FRACTION, PERCENTAGE_POINTS, POSITIVE, Range, finite
from edge_pipeline.report.model import ArtifactReport, Check, CheckKind, Report

__all__ = ["BUDGETS", "Check", "Metric", "check_budgets", "completeness_checks", "outliers", "parse_budget",
           "validate_budget"]


@dataclass(frozen=True)
class Metric:
    """How to read one budget's value from an artifact, and which side of the limit passes."""

    name: str
    read: Callable[[ArtifactReport], float | None]
    upper: bool = True                      # True: value must be <= limit
    noise: Callable[[ArtifactReport], float] | None = None
    valid: Range = POSITIVE                 # the limits that mean something
    applies: Callable[[ArtifactReport], bool] | None = None   # None: every artifact; else only those it holds for
    kind_of: str = ""                       # what the artifacts it applies to are, for the skipped check's text


def _p50(a: ArtifactReport) -> float | None:
    return a.latency_ms.p50 if a.latency_ms is not None else None


def _p90(a: ArtifactReport) -> float | None:
    return a.latency_ms.p90 if a.latency_ms is not None else None


def _noise(a: ArtifactReport) -> float:
    return float((a.latency_ms.noise if a.latency_ms is not None else None) or 0.0)


def _generation(a: ArtifactReport, name: str) -> float | None:
    value = getattr(a.generation, name) if a.generation is not None else None
    return float(value) if value is not None else None


def _kb(size: int | None) -> float | None:
    return size / 1024 if size is not None else None


BUDGETS: dict[str, Metric] = {
    "max-size-kb": Metric("size_kb", lambda a: _kb(a.size_bytes)),
    "max-compressed-size-kb": Metric("compressed_size_kb", lambda a: _kb(a.size_compressed_bytes)),
    "max-accuracy-drop": Metric("accuracy_drop_pt", lambda a: a.accuracy_drop, valid=PERCENTAGE_POINTS),
    "min-accuracy": Metric("accuracy", lambda a: a.accuracy, upper=False, valid=FRACTION),
    "min-agreement": Metric("agreement", lambda a: a.agreement, upper=False, valid=FRACTION),
    "max-latency-ms": Metric("latency_p50_ms", _p50, noise=_noise),
    "max-latency-p90-ms": Metric("latency_p90_ms", _p90, noise=_noise),
    # language models (text-generation)
    "min-decode-tps": Metric("decode_tokens_per_s", lambda a: _generation(a, "decode_tokens_per_s"), upper=False),
    "max-ttft-ms": Metric("ttft_ms", lambda a: _generation(a, "ttft_ms")),
    "max-ppl-increase-pct": Metric("ppl_increase_pct", lambda a: _generation(a, "perplexity_increase_pct"),
                                   valid=Range(0.0, 1000.0)),
    "min-token-agreement": Metric("token_agreement", lambda a: _generation(a, "token_agreement"), upper=False,
                                  valid=FRACTION),
    # served artifacts (the server target): p99 at the highest concurrency tested, the best throughput reached
    "max-p99-ms": Metric("server_p99_ms", lambda a: a.server_load.worst_p99_ms if a.server_load else None,
                         applies=lambda a: a.server_load is not None, kind_of="a served artifact"),
    "min-throughput-rps": Metric("server_throughput_rps",
                                 lambda a: a.server_load.best_throughput_rps if a.server_load else None, upper=False,
                                 applies=lambda a: a.server_load is not None, kind_of="a served artifact"),
}


def parse_budget(text: str, where: str = "--budget") -> tuple[str, float]:
    """`name=value` from the command line; unknown names list the valid ones."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep:
        raise ConfigError(f"{where} '{text}' must look like name=value, e.g. max-size-kb=900")
    return name, validate_budget(name, raw.strip(), where)


def validate_budget(name: str, value: object, where: str) -> float:
    """The budget's limit: a known name and a finite number in the range that budget means (NaN would read as
    met, infinity as no limit)."""
    if name not in BUDGETS:
        import difflib

        close = difflib.get_close_matches(name, list(BUDGETS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{where}: unknown budget '{name}'. Valid: {', '.join(BUDGETS)}.{hint}")
    return finite(value, f"{where}: budget '{name}'", BUDGETS[name].valid)


def check_budgets(budgets: Mapping[str, float], artifacts: Sequence[ArtifactReport]) -> list[Check]:
    checks: list[Check] = []
    for budget, limit in budgets.items():
        metric = BUDGETS[budget]
        for artifact in artifacts:
            if artifact.status in ("ok", "unvalidated"):   # failed ones: completeness_checks
                checks.append(_budget_check(metric, float(limit), artifact))
    return checks


def completeness_checks(report: Report) -> list[Check]:
    """What `edgepipe gate` requires before any budget: a build with artifacts, none of which failed."""
    artifacts = report.artifacts
    checks = [Check(a.label, "status", 0, None, False, f"{a.label}: {a.status}: {_reason(a)}",
                    CheckKind.STATUS)
              for a in artifacts if a.status not in ("ok", "unvalidated")]
    if not any(a.status == "ok" for a in artifacts):
        checks.append(Check("report", "artifacts", 1, 0, False, "the report has no validated artifact",
                            CheckKind.STATUS))
    if report.status == "stage_failed" and not checks:
        checks.append(Check("report", "status", 0, None, False, "the build's status is stage_failed",
                            CheckKind.STATUS))
    return checks


def _budget_check(metric: Metric, limit: float, artifact: ArtifactReport) -> Check:
    if metric.applies is not None and not metric.applies(artifact):
        return Check(artifact.label, metric.name, limit, None, True,
                     f"{artifact.label}: not {metric.kind_of}; {metric.name} limit {limit:g} not applied",
                     CheckKind.SKIPPED)
    if artifact.status == "unvalidated" and metric.read(artifact) is None:
        label = artifact.label
        return Check(label, metric.name, limit, None, True,
                     f"{label}: {metric.name} not measured (unvalidated artifact); limit {limit:g} not applied",
                     CheckKind.SKIPPED)
    return _check(metric, limit, artifact)


def _reason(artifact: ArtifactReport) -> str:
    return " ".join(str((artifact.error.message if artifact.error else None) or "no reason recorded").split())[:300]


def _check(metric: Metric, limit: float, artifact: ArtifactReport) -> Check:
    label = artifact.label
    value = metric.read(artifact)
    noise = metric.noise(artifact) if metric.noise else 0.0
    if value is None:
        return Check(label, metric.name, limit, None, False,
                     f"{label}: {metric.name} was not measured (limit {limit:g})")
    passed = (value - noise <= limit) if metric.upper else (value >= limit)
    relation = ("within" if passed else "exceeds") if metric.upper else ("meets" if passed else "is below")
    noise_note = f" (noise ±{noise:.3g})" if noise and metric.upper else ""
    return Check(label, metric.name, limit, value, passed,
                 f"{label}: {metric.name} = {value:.4g}{noise_note} {relation} limit {limit:g}")


def outliers(artifacts: Sequence[ArtifactReport]) -> list[str]:
    """Suspicious results worth a look, not failures: e.g. a quantized artifact slower than its fp32 twin."""
    notes = []
    fp32 = {a.format: a for a in artifacts if a.precision == "fp32" and a.status == "ok"}
    for a in artifacts:
        twin = fp32.get(a.format)
        if twin is None or a is twin or a.status != "ok":
            continue
        mine, theirs = _p50(a), _p50(twin)
        if mine is not None and theirs is not None and mine - _noise(a) > theirs + _noise(twin):
            notes.append(f"{a.label} is slower than its fp32 twin "
                         f"({mine:.4g} ms vs {theirs:.4g} ms p50) on this host")
    return notes
