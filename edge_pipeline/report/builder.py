"""The one report builder `build` (writer.py) and `profile` (profile_artifact.py) share.

Why one: the verdict (status and passed from the stages and the gate), the budget checks, the timings, the host
and the tool versions must mean the same in a build's report and a profile's, so they are decided here once;
each caller only supplies what differs (its source, its artifacts, its warnings, its config).
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from edge_pipeline.host import host_id, versions
from edge_pipeline.report.gating import check_budgets, outliers
from edge_pipeline.report.model import ArtifactReport, Latency, Report, SourceReport, Validation
from edge_pipeline.types import ArtifactResult
from edge_pipeline.version import __version__


def artifact_report(result: ArtifactResult, source_accuracy: float | None, relpath: str | None,
                    runner: str | None = None, extra: Mapping[str, Any] | None = None) -> ArtifactReport:
    """One artifact's report entry from what the stages measured (`measure`) and exported (`export`)."""
    measure = result.measure or {}
    validation = measure.get("validation") or None
    latencies = [Latency.from_measure(entry) for entry in measure.get("latency") or []]
    primary = latencies[0] if latencies else None
    accuracy = measure.get("accuracy")
    drop = None
    if accuracy is not None and source_accuracy is not None:
        drop = round((source_accuracy - accuracy) * 100, 4)
    metadata = (result.export or {}).get("metadata") or {}
    quantization = metadata.get("quantization") or {}
    return ArtifactReport(
        format=result.output.format, precision=result.output.precision, status=result.status, path=relpath,
        size_bytes=result.size_bytes, size_compressed_bytes=result.size_compressed_bytes, sha256=result.sha256,
        runtime=measure.get("runtime"), runtime_version=measure.get("runtime_version"),
        latency_ms=primary, latency_by_threads=tuple(latencies), accuracy=accuracy, accuracy_drop=drop,
        agreement=(validation or {}).get("agreement"), max_abs_diff=(validation or {}).get("max_abs_diff"),
        validation=Validation.from_json(validation) if validation else None,
        measured_on=primary.measured_on if primary else None, export=result.export or None, cached=result.cached,
        error=result.error, sample_outputs=measure.get("sample_outputs"), op_profile=measure.get("op_profile"),
        op_coverage=metadata.get("op_coverage"), sensitivity=quantization.get("sensitivity"),
        fallback=quantization.get("fallback"),
        signature=measure.get("signature"),              # tensors as an app encodes them (dtype, scale, zero point)
        peak_rss_mb=measure.get("peak_rss_mb"),          # whole measuring process: Python + runtime + model
        runtime_memory_mb=measure.get("runtime_memory_mb"),   # what loading + running this model added
        runner=runner, extra=dict(extra or {}))


def build_report(*, target: str, source: Mapping[str, Any], artifacts: Sequence[ArtifactReport],
                 budgets: Mapping[str, float], warnings: Iterable[str], timings: Mapping[str, float], started: float,
                 tools: Sequence[str], config: Mapping[str, Any]) -> Report:
    """The report: checks from the budgets, the verdict from the artifacts' stages and the checks."""
    checks = tuple(check_budgets(budgets, artifacts))
    stage_failed = any(a.status == "failed" for a in artifacts)
    gate_failed = any(not c.passed for c in checks)
    timings = {**timings, "total": time.perf_counter() - started}
    return Report(
        edgepipe_version=__version__, target=target, passed=not (stage_failed or gate_failed),
        status="stage_failed" if stage_failed else "gate_failed" if gate_failed else "passed",
        source=SourceReport.from_json(source), artifacts=tuple(artifacts), checks=checks, budgets=dict(budgets),
        warnings=tuple(warnings), stage_timings_s={k: round(v, 3) for k, v in timings.items()}, host=host_id(),
        tool_versions=versions(tuple(tools)), config=config)


def build_warnings(artifacts: Sequence[ArtifactReport]) -> list[str]:
    """What a build's reader should look at: outliers, ops the runtime leaves out, validation's own notes and
    artifacts kept unvalidated."""
    return outliers(artifacts) + coverage_warnings(artifacts) + validation_warnings(artifacts) + [
        f"{a.label} is unvalidated: {(a.export or {}).get('unvalidated_reason')}"
        for a in artifacts if a.status == "unvalidated"]


def validation_warnings(artifacts: Sequence[ArtifactReport]) -> list[str]:
    """Validation's own warnings (a small evaluation set), once per distinct text."""
    seen: list[str] = []
    for a in artifacts:
        for text in (a.validation.warnings if a.validation is not None else None) or []:
            if text not in seen:
                seen.append(text)
    return seen


def coverage_warnings(artifacts: Sequence[ArtifactReport]) -> list[str]:
    """Ops the artifact's own runtime leaves out after conversion (e.g. outside the XNNPACK delegate)."""
    notes = []
    for a in artifacts:
        for c in a.op_coverage or []:
            if c["primary"] and c["stage"] == "after" and c["unsupported_nodes"]:
                ops = ", ".join(f"{u['op']} (layer {', '.join(u['layers'][:3])})" for u in c["unsupported"][:5])
                notes.append(f"{a.label}: {c['unsupported_nodes']} node(s) not supported by {c['runtime']}: {ops}")
    return notes
