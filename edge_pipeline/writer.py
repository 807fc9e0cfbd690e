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
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .version import __version__
from .bundle import bundleable, sample_record, template_misfit, write_bundle
from .errors import StageFailed
from .fsutil import (DiskFull, copy_atomic, current_umask, is_disk_full, remove_stale_siblings, replace_dir,
                     write_json_atomic, write_text_atomic)
from .gating import check_budgets, outliers
from .host import host_id, versions
from .html_report import to_html
from .junit import to_junit
from .report import SCHEMA_VERSION, artifact_entry, coverage_warnings, to_markdown, validation_warnings
from .types import ArtifactResult, Target

if TYPE_CHECKING:
    from .pipeline import BuildOptions
    from .plan import Step

BUILD_LOG = "build.log"
TOOLS = ("torch", "executorch", "torchao", "litert-torch", "ai-edge-litert", "numpy", "edgepipe")


def write_outputs(target: Target, options: "BuildOptions", source: dict[str, Any], source_dir: Path,
                  steps: list["Step"], results: list[ArtifactResult], timings: dict[str, float],
                  started: float) -> dict[str, Any]:
    dest = options.out_dir / target.name
    staging = options.out_dir / f".{target.name}.staging-{os.getpid()}"
    remove_stale_siblings(dest, f".{target.name}.staging-*")
    created = not options.out_dir.exists()
    try:
        staging.mkdir(parents=True, exist_ok=True)
        return _write(target, options, source, source_dir, steps, results, timings, started, staging, dest)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                options.out_dir.rmdir()    # only if still empty: nothing of this run stays behind
        if isinstance(exc, DiskFull) or is_disk_full(exc):
            raise DiskFull(f"disk full while writing {dest}: nothing was written"
                           f"{' (the previous build there is unchanged)' if dest.exists() else ''}") from exc
        raise


def _write(target: Target, options: "BuildOptions", source: dict[str, Any], source_dir: Path, steps: list["Step"],
           results: list[ArtifactResult], timings: dict[str, float], started: float, staging: Path,
           dest: Path) -> dict[str, Any]:
    artifacts = []
    for step, result in zip(steps, results):
        relpath = None
        if result.status in ("ok", "unvalidated") and result.path:   # unvalidated: kept, labelled, never bundled
            copy_atomic(Path(result.path), staging / step.filename)
            relpath = step.filename
        artifacts.append({**artifact_entry(result, source.get("accuracy"), relpath), "runner": step.runner})
    checks = [c.to_dict() for c in check_budgets(target.budgets, artifacts)]
    stage_failed = any(a["status"] == "failed" for a in artifacts)
    gate_failed = any(not c["passed"] for c in checks)
    timings = {**timings, "total": time.perf_counter() - started}
    report = {
        "schema_version": SCHEMA_VERSION,
        "edgepipe_version": __version__,
        "target": target.name,
        "passed": not (stage_failed or gate_failed),
        "status": "stage_failed" if stage_failed else "gate_failed" if gate_failed else "passed",
        "source": {k: source.get(k) for k in ("framework", "params", "size_bytes", "accuracy", "fingerprint",
                                              "input_shape", "output_shape", "inputs", "outputs", "metric",
                                              "metric_output", "eval_samples", "calibration_samples",
                                              "provenance", "pruning", "cached")},
        "artifacts": artifacts,
        "checks": checks,
        "budgets": dict(target.budgets),
        "warnings": outliers(artifacts) + coverage_warnings(artifacts) + validation_warnings(artifacts) + [
            f"{a['format']}:{a['precision']} is unvalidated: {a['export'].get('unvalidated_reason')}"
            for a in artifacts if a["status"] == "unvalidated"],
        "stage_timings_s": {k: round(v, 3) for k, v in timings.items()},
        "host": host_id(),
        "tool_versions": versions(TOOLS),
        "config": {**options.config.to_dict(), "target": _target_dict(target)},
    }
    manifest = {"target": target.name, "source_fingerprint": source["fingerprint"],
                "artifacts": [{"path": a["path"], "format": a["format"], "precision": a["precision"],
                               "sha256": a["sha256"], "size_bytes": a["size_bytes"]}
                              for a in artifacts if a["path"]]}
    write_text_atomic(staging / "samples.json", json.dumps(sample_record(report, source_dir / "data")) + "\n")   # arrays: compact
    misfit = template_misfit(report["source"]) if target.bundle else None
    if misfit is not None:
        report["warnings"].append(f"no '{target.bundle}' bundle: {misfit}")
    elif target.bundle and not bundleable(target.bundle, artifacts) and any(a["status"] == "ok" for a in artifacts):
        report["warnings"].append(f"no '{target.bundle}' bundle: none of the validated artifacts is a format its app runs")
    elif target.bundle and bundleable(target.bundle, artifacts):
        try:
            report["bundle"] = write_bundle(target.bundle, staging, report)
        except StageFailed as exc:   # the artifacts stand; only the demo app cannot take them
            shutil.rmtree(staging / ".bundle.staging", ignore_errors=True)
            report["warnings"].append(f"no '{target.bundle}' bundle: {exc}")
        except (OSError, ValueError, StopIteration) as exc:
            if is_disk_full(exc):
                raise
            raise StageFailed(f"bundle '{target.bundle}': {type(exc).__name__}: {exc}") from exc
    write_json_atomic(staging / "manifest.json", manifest)
    log = options.log_file
    if log is not None and log.is_file() and log.stat().st_size:
        report["log"] = BUILD_LOG      # native libraries' output, kept off the terminal
    write_views(staging, report)
    if "log" in report:
        _move_log(log, staging / BUILD_LOG)
    replace_dir(staging, dest)
    return report


def _move_log(log: Path, dest: Path) -> None:
    """Renames the open build log into the build (writes still in flight follow the inode); copies across devices."""
    try:
        os.replace(log, dest)
    except OSError:
        shutil.copyfile(log, dest)
    os.chmod(dest, 0o666 & ~current_umask())


def write_views(folder: Path, report: dict[str, Any]) -> None:
    """report.json and every view of it; the Markdown also goes to $GITHUB_STEP_SUMMARY when set."""
    markdown = to_markdown(report)
    write_json_atomic(folder / "report.json", report)
    write_text_atomic(folder / "report.md", markdown)
    write_text_atomic(folder / "report.html", to_html(report))
    write_text_atomic(folder / "report.junit.xml", to_junit(report))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as fh:
            fh.write(markdown + "\n")


def _target_dict(target: Target) -> dict[str, Any]:
    return {"name": target.name, "outputs": [o.label for o in target.outputs],
            "budgets": dict(target.budgets), "profile": vars(target.profile), "device_class": target.device_class}
