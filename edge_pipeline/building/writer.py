"""Writes a build's outputs: validated artifacts, stage records, manifest, report (JSON + Markdown).

Everything is written into a staging folder that replaces `out/<target>` in one rename, so a failed
or interrupted build never leaves a mix of old and new files, nor an unvalidated artifact. Whatever stops the
write (a full disk, Ctrl-C, a bug) removes the staging folder; one left by a killed process is removed by the next.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from edge_pipeline.building.bundle import bundleable, sample_record, template_misfit, write_bundle
from edge_pipeline.building.overlays import write_overlays
from edge_pipeline.building.plan import Step
from edge_pipeline.building.recorded import RECORDED, load_recording, record
from edge_pipeline.building.report_builder import artifact_report, build_report, build_warnings
from edge_pipeline.config import Config
from edge_pipeline.errors import StageFailed
from edge_pipeline.fsutil import (
    DiskFull,
    copy_atomic,
    current_umask,
    is_disk_full,
    remove_stale_siblings,
    replace_dir,
    write_json_atomic,
    write_text_atomic,
)
from edge_pipeline.records import ArtifactResult, SourceRecord, Status
from edge_pipeline.report.html import to_html
from edge_pipeline.report.junit import to_junit
from edge_pipeline.report.markdown import to_markdown
from edge_pipeline.report.model import HistoryLink, Report
from edge_pipeline.types import TEXT_GENERATION, JsonObject, Target


@dataclass(frozen=True)
class BuildOutcome:
    """What a build produced, handed to the writer in one typed piece (the writer needs nothing else)."""

    target: Target
    out_dir: Path
    config: Config
    log_file: Path | None                # native libraries' output during the build, moved into the folder
    source: SourceRecord
    source_dir: Path
    steps: list[Step]
    results: list[ArtifactResult]
    timings: dict[str, float]
    started: float


BUILD_LOG = "build.log"


def write_outputs(outcome: BuildOutcome) -> Report:
    options, target = outcome, outcome.target
    dest = options.out_dir / target.name
    staging = options.out_dir / f".{target.name}.staging-{os.getpid()}"
    remove_stale_siblings(dest, f".{target.name}.staging-*")
    created = not options.out_dir.exists()
    try:
        staging.mkdir(parents=True, exist_ok=True)
        return _write(outcome, staging, dest)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                options.out_dir.rmdir()    # only if still empty: nothing of this run stays behind
        if isinstance(exc, DiskFull) or is_disk_full(exc):
            raise DiskFull(f"disk full while writing {dest}: nothing was written"
                           f"{' (the previous build there is unchanged)' if dest.exists() else ''}") from exc
        raise


def _write(outcome: BuildOutcome, staging: Path, dest: Path) -> Report:
    options, target, source, source_dir = outcome, outcome.target, outcome.source, outcome.source_dir
    steps, results, timings, started = outcome.steps, outcome.results, outcome.timings, outcome.started
    artifacts = []
    for step, result in zip(steps, results):
        relpath = None
        if result.status in (Status.OK, Status.UNVALIDATED) and result.path:   # unvalidated: never bundled
            copy_atomic(result.path, staging / step.filename)
            relpath = step.filename
        artifacts.append(artifact_report(result, source.accuracy, relpath, runner=step.runner))
    language_model = source.task == TEXT_GENERATION
    if not language_model and (source_dir / "reference.npz").is_file():
        record(source_dir, staging / RECORDED)      # the calls a board app replays
    overlays, overlay_warnings = ({}, []) if language_model else \
        write_overlays(staging, steps, results, load_recording(staging / RECORDED))
    artifacts = [replace(a, graph_overlays=overlays.get(i)) for i, a in enumerate(artifacts)]
    report = build_report(
        target=target.name, source=source.report_json(), artifacts=artifacts, budgets=target.budgets,
        warnings=[*build_warnings(artifacts), *overlay_warnings], timings=timings, started=started,
        tools=_tools(steps),
        config={**options.config.to_dict(), "target": _target_dict(target)})
    manifest = {"target": target.name, "source_fingerprint": source.fingerprint,
                "artifacts": [{"path": a.path, "format": a.format, "precision": a.precision,
                               "sha256": a.sha256, "size_bytes": a.size_bytes}
                              for a in artifacts if a.path]}
    samples = sample_record(report, source_dir / "data")
    write_text_atomic(staging / "samples.json", json.dumps(samples) + "\n")   # arrays: compact
    report = _bundle(target, staging, report)
    if options.config.tensorboard:
        report = _log_history(report, Path(options.config.tensorboard), Path(options.config.source.base_dir))
    write_json_atomic(staging / "manifest.json", manifest)
    log = options.log_file
    if log is not None and log.is_file() and log.stat().st_size:
        report = replace(report, log=BUILD_LOG)      # native libraries' output, kept off the terminal
    write_views(staging, report)
    if report.log is not None:
        _move_log(log, staging / BUILD_LOG)
    replace_dir(staging, dest)
    return report


def _log_history(report: Report, folder: Path, project: Path) -> Report:
    """The build appended to its TensorBoard history (`[report] tensorboard`), tagged with the project's commit."""
    from edge_pipeline.report.tensorboard import append_build, git_commit

    logged = append_build(report, folder, git_commit(project))
    return replace(report, history=HistoryLink(tensorboard=str(logged.run), step=logged.step, commit=logged.commit))


def _bundle(target: Target, staging: Path, report: Report) -> Report:
    """The target's demo-app bundle for the model's task, or a warning saying why there is none."""
    template = target.bundle_for(report.source.task)
    if not template:
        return report
    misfit = template_misfit(template, report)
    note = None
    if misfit is not None:
        note = f"no '{template}' bundle: {misfit}"
    elif not bundleable(template, report) and any(a.status == Status.OK.value for a in report.artifacts):
        note = f"no '{template}' bundle: none of the validated artifacts is a format its app runs"
    elif bundleable(template, report):
        try:
            return replace(report, bundle=write_bundle(template, staging, report))
        except StageFailed as exc:   # the artifacts stand; only the demo app cannot take them
            shutil.rmtree(staging / ".bundle.staging", ignore_errors=True)
            note = f"no '{template}' bundle: {exc}"
        except (OSError, ValueError, StopIteration) as exc:
            if is_disk_full(exc):
                raise
            raise StageFailed(f"bundle '{template}': {type(exc).__name__}: {exc}") from exc
    return report if note is None else replace(report, warnings=(*report.warnings, note))


def _move_log(log: Path, dest: Path) -> None:
    """Renames the open build log into the build (writes still in flight follow the inode); copies across devices."""
    try:
        os.replace(log, dest)
    except OSError:
        shutil.copyfile(log, dest)
    os.chmod(dest, 0o666 & ~current_umask())


def write_views(folder: Path, report: Report) -> None:
    """report.json and every view of it; the Markdown also goes to $GITHUB_STEP_SUMMARY when set."""
    markdown = to_markdown(report)
    write_json_atomic(folder / "report.json", report.to_json())
    write_text_atomic(folder / "report.md", markdown)
    write_text_atomic(folder / "report.html", to_html(report))
    write_text_atomic(folder / "report.junit.xml", to_junit(report))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as fh:
            fh.write(markdown + "\n")


def _target_dict(target: Target) -> JsonObject:
    profile = target.profile
    return {"name": target.name, "outputs": [o.label for o in target.outputs], "budgets": dict(target.budgets),
            "profile": {"warmup": profile.warmup, "runs": profile.runs, "threads": list(profile.threads),
                        "memory_mb": profile.memory_mb}, "device_class": target.device_class}


def _tools(steps: list[Step]) -> tuple[str, ...]:
    """The packages whose versions the report records: everything the build's routes ran, and numpy."""
    return tuple(dict.fromkeys((*(d for step in steps for d in step.distributions), "numpy", "edgepipe")))
