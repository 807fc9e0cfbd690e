"""The one report builder `build` (writer.py) and `profile` (profile.py) share.

Why one: the verdict (status and passed from the stages and the gate), the budget checks, the timings, the host
and the tool versions must mean the same in a build's report and a profile's, so they are decided here once;
each caller only supplies what differs (its source, its artifacts, its warnings, its config).
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

from edge_pipeline.errors import StageFailed
from edge_pipeline.host import host_id, versions
from edge_pipeline.records import ArtifactResult
from edge_pipeline.report.gating import check_budgets, outliers
from edge_pipeline.report.model import ArtifactReport, ExportReport, Report, ReportStatus, SourceReport, Status
from edge_pipeline.report.strict import ReportFieldError
from edge_pipeline.types import JsonObject, JsonValue
from edge_pipeline.version import __version__


def artifact_report(result: ArtifactResult, source_accuracy: float | None, relpath: str | None,
                    runner: str | None = None, extra: JsonObject | None = None) -> ArtifactReport:
    """One artifact's report entry from what the stages exported and measured."""
    measured = result.measurement
    latencies = measured.latency if measured is not None else ()
    primary = latencies[0] if latencies else None
    accuracy = measured.accuracy if measured is not None else None
    drop = None
    if accuracy is not None and source_accuracy is not None:
        drop = round((source_accuracy - accuracy) * 100, 4)
    exported = result.exported
    metadata = exported.result.metadata if exported is not None else {}
    quantization = metadata.get("quantization")
    notes = quantization if isinstance(quantization, dict) else {}
    validation = measured.validation if measured is not None else None
    coverage = metadata.get("op_coverage")
    return ArtifactReport(
        format=result.output.format, precision=result.output.precision.name, status=result.status, path=relpath,
        size_bytes=exported.size_bytes if exported else None,
        size_compressed_bytes=exported.size_compressed_bytes if exported else None,
        sha256=exported.sha256 if exported else None,
        runtime=measured.runtime if measured else None, runtime_version=measured.runtime_version if measured else None,
        latency_ms=primary, latency_by_threads=latencies, accuracy=accuracy, accuracy_drop=drop,
        agreement=validation.agreement if validation else None,
        max_abs_diff=validation.max_abs_diff if validation else None, validation=validation,
        measured_on=primary.measured_on if primary else None, export=_export_section(result),
        cached=result.cached, error=result.error,
        sample_outputs=measured.sample_outputs if measured else None,
        op_profile=measured.op_profile if measured else None,
        op_coverage=coverage if isinstance(coverage, list) else None,
        sensitivity=_mapping(notes.get("sensitivity")), fallback=_mapping(notes.get("fallback")),
        signature=measured.signature if measured else None,   # tensors as an app encodes them
        peak_rss_mb=measured.peak_rss_mb if measured else None,   # whole measuring process: Python + runtime + model
        runtime_memory_mb=measured.runtime_memory_mb if measured else None,   # what loading + running it added
        runner=runner, generation=measured.generation if measured else None,
        server_load=measured.server_load if measured else None, extra=dict(extra or {}))


def _export_section(result: ArtifactResult) -> ExportReport | None:
    """The report's `export` part: the converter's metadata, the time it took, and the route it took."""
    if result.exported is None or result.exporter is None:   # `edgepipe profile`: nothing was exported
        return None
    exported = result.exported.result
    return ExportReport(metadata=exported.metadata, seconds=exported.seconds, bridge=result.bridge,
                        exporter=result.exporter, transform=result.transform,
                        unvalidated_reason=result.unvalidated_reason, route=exported.route)


def _mapping(value: JsonValue) -> JsonObject | None:
    return value if isinstance(value, dict) else None


def build_report(*, target: str, source: JsonObject, artifacts: Sequence[ArtifactReport],
                 budgets: Mapping[str, float], warnings: Iterable[str], timings: Mapping[str, float], started: float,
                 tools: Sequence[str], config: JsonObject) -> Report:
    """The report: checks from the budgets, the verdict from the artifacts' stages and the checks."""
    checks = tuple(check_budgets(budgets, artifacts))
    stage_failed = any(a.status is Status.FAILED for a in artifacts)
    gate_failed = any(not c.passed for c in checks)
    timings = {**timings, "total": time.perf_counter() - started}
    try:
        source_report = SourceReport.from_json(source, "source")
    except ReportFieldError as exc:
        raise StageFailed(f"the source plugin reported an impossible figure: {exc}") from None
    return Report(
        edgepipe_version=__version__, target=target, passed=not (stage_failed or gate_failed),
        status=ReportStatus.STAGE_FAILED if stage_failed else ReportStatus.GATE_FAILED if gate_failed
        else ReportStatus.PASSED,
        source=source_report, artifacts=tuple(artifacts), checks=checks, budgets=dict(budgets),
        warnings=tuple(warnings), stage_timings_s={k: round(v, 3) for k, v in timings.items()}, host=host_id(),
        tool_versions=versions(tuple(tools)), config=config)


def build_warnings(artifacts: Sequence[ArtifactReport]) -> list[str]:
    """What a build's reader should look at: outliers, ops the runtime leaves out, validation's own notes and
    artifacts kept unvalidated."""
    return outliers(artifacts) + coverage_warnings(artifacts) + validation_warnings(artifacts) + [
        f"{a.label} is unvalidated: {a.export.unvalidated_reason if a.export else None}"
        for a in artifacts if a.status is Status.UNVALIDATED]


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
