"""A build's figures appended to a TensorBoard log, one step per build, so `tensorboard --logdir DIR` shows how
size, latency and accuracy moved from commit to commit.

Each target is a run (`DIR/<target>/`); each build adds an event file there with one step: per artifact its size,
p50 latency per thread count, accuracy, drop, agreement and whether it passed (scalars), the per-layer int8 SQNR
of its sensitivity ranking (a histogram), and the build's verdict and git commit. The step is the build's number
in `DIR/<target>/edgepipe-builds.json`, the index of the builds logged there (with their commits). Event files are
written with TensorBoard's own writer and protos (no TensorFlow import).
"""
from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge_pipeline.errors import ConfigError
from edge_pipeline.fsutil import write_json_atomic
from edge_pipeline.paths import plain_name
from edge_pipeline.report.baseline import read_json_file
from edge_pipeline.report.check import Check, CheckKind
from edge_pipeline.report.model import ArtifactReport, Report

INDEX = "edgepipe-builds.json"
MAX_BUILDS = 100_000


@dataclass(frozen=True)
class Logged:
    """Where a build's figures went: the run folder, the step, the commit it was tagged with."""

    run: Path
    step: int
    commit: str | None
    scalars: int


def check_log_dir(folder: Path, what: str = "tensorboard folder") -> Path:
    """The folder, created if needed and proven writable before a build starts (one line, exit 2 otherwise)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".edgepipe-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{what} {folder} cannot be written: {exc.strerror or exc}") from None
    if not folder.is_dir():
        raise ConfigError(f"{what} {folder} is not a folder")
    return folder


def check_history(folder: Path, target: str, what: str) -> None:
    """Before a build: the folder can be written and the target's build index, if any, reads."""
    check_log_dir(folder, what)
    run = folder / plain_name(target, "--target")
    if run.exists():
        _read_index(check_log_dir(run, what))


def git_commit(where: Path) -> str | None:
    """The commit checked out in `where` (None outside a git work tree or without git)."""
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = proc.stdout.strip()
    return commit if proc.returncode == 0 and len(commit) == 40 else None


def scalars(report: Report) -> Iterator[tuple[str, float]]:
    """Every figure of the build as (tag, value): `<artifact>/<figure>` and `build/<figure>`."""
    yield "build/passed", float(bool(report.passed))
    for artifact in report.artifacts:
        yield from _artifact_scalars(artifact)


def _artifact_scalars(a: ArtifactReport) -> Iterator[tuple[str, float]]:
    label = a.label
    yield f"{label}/passed", float(a.status == "ok")
    figures = {"size_kb": a.size_bytes / 1024 if a.size_bytes is not None else None,
               "size_compressed_kb": a.size_compressed_bytes / 1024 if a.size_compressed_bytes is not None else None,
               "accuracy": a.accuracy, "accuracy_drop_pt": a.accuracy_drop, "agreement": a.agreement,
               "peak_rss_mb": a.peak_rss_mb}
    for name, value in figures.items():
        if value is not None:
            yield f"{label}/{name}", float(value)
    for latency in a.latency_by_threads or ((a.latency_ms,) if a.latency_ms else ()):
        if latency is not None and latency.p50 is not None:
            threads = latency.threads or 1
            yield f"{label}/latency_p50_ms/{threads}_thread{'s' if threads != 1 else ''}", float(latency.p50)


def layer_sqnr(artifact: ArtifactReport) -> list[float]:
    """The per-layer int8 SQNR (dB) of the artifact's sensitivity ranking, where it ran."""
    layers = (artifact.sensitivity or {}).get("layers")
    values = [row.get("sqnr_db") for row in layers if isinstance(row, dict)] if isinstance(layers, list) else []
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]


def append_build(report: Report, folder: Path, commit: str | None) -> Logged:
    """Appends `report` as the next step of its target's run in `folder` (checked with `check_log_dir`)."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    run = check_log_dir(folder / plain_name(report.target or "build", "report target"))
    builds = _read_index(run)
    step = len(builds)
    values = [summary_pb2.Summary.Value(tag=tag, simple_value=value) for tag, value in scalars(report)]
    for artifact in report.artifacts:
        sqnr = layer_sqnr(artifact)
        if sqnr:
            values.append(summary_pb2.Summary.Value(tag=f"{artifact.label}/layer_sqnr_db", histo=_histogram(sqnr)))
    text = f"step {step}: {'passed' if report.passed else 'failed'}, commit {commit or 'unknown (not a git tree)'}"
    values.append(summary_pb2.Summary.Value(
        tag="build/commit", metadata=summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text")),
        tensor=_string_tensor(text)))
    writer = EventFileWriter(str(run), filename_suffix=f".step{step}")
    now = time.time()
    writer.add_event(event_pb2.Event(wall_time=now, step=step, summary=summary_pb2.Summary(value=values)))
    writer.close()
    builds.append({"step": step, "commit": commit, "wall_time": round(now, 3), "passed": bool(report.passed),
                   "edgepipe_version": report.edgepipe_version})
    write_json_atomic(run / INDEX, {"builds": builds})
    return Logged(run, step, commit, len(values))


def append_gate(report: Report, checks: Sequence[Check], folder: Path) -> Logged:
    """A gate's verdict at the step of the build it checked: the report's own step when it was logged to this
    folder, else the latest build logged there (`gate/passed`, `gate/failed_checks`, failed checks per kind)."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    run = folder / plain_name(report.target or "build", "report target")
    builds = _read_index(run) if run.is_dir() else []     # a gate creates nothing where no build was logged
    if not builds:
        raise ConfigError(f"tensorboard folder {run} has no build logged: build with --tensorboard first")
    check_log_dir(run, "tensorboard folder")
    link = report.history
    same = link is not None and link.tensorboard == str(run) and link.step is not None and link.step < len(builds)
    step = link.step if same and link is not None and link.step is not None else len(builds) - 1
    counted = [c for c in checks if c.kind != CheckKind.SKIPPED]
    figures = {"gate/passed": float(all(c.passed for c in counted)),
               "gate/failed_checks": float(sum(not c.passed for c in counted))}
    for kind in (CheckKind.BUDGET, CheckKind.BASELINE, CheckKind.STATUS):
        figures[f"gate/{kind.value}_failed"] = float(sum(not c.passed for c in counted if c.kind == kind))
    values = [summary_pb2.Summary.Value(tag=tag, simple_value=value) for tag, value in figures.items()]
    writer = EventFileWriter(str(run), filename_suffix=f".gate{step}")
    writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=values)))
    writer.close()
    return Logged(run, step, None, len(values))


def _read_index(run: Path) -> list[dict[str, object]]:
    path = run / INDEX
    if not path.exists():
        return []
    data = read_json_file(path, "tensorboard build index")
    builds = data.get("builds") if isinstance(data, dict) else None
    if not isinstance(builds, list) or len(builds) > MAX_BUILDS or not all(isinstance(b, dict) for b in builds):
        raise ConfigError(f"tensorboard build index {path} is damaged: expected {{\"builds\": [...]}} as edgepipe "
                          f"writes it (move the folder aside to start a new history)")
    return builds


def _histogram(values: list[float]) -> object:
    """A TensorBoard histogram of `values`, one bucket per 5 dB."""
    import numpy as np
    from tensorboard.compat.proto import summary_pb2

    data = np.asarray(values, dtype=np.float64)
    edges = np.arange(np.floor(data.min() / 5) * 5, np.floor(data.max() / 5) * 5 + 10, 5.0)
    counts, _ = np.histogram(data, bins=edges)
    return summary_pb2.HistogramProto(min=float(data.min()), max=float(data.max()), num=float(data.size),
                                      sum=float(data.sum()), sum_squares=float((data ** 2).sum()),
                                      bucket_limit=[float(e) for e in edges[1:]], bucket=[float(c) for c in counts])


def _string_tensor(text: str) -> object:
    from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2, types_pb2

    return tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[text.encode()],
                                  tensor_shape=tensor_shape_pb2.TensorShapeProto())
