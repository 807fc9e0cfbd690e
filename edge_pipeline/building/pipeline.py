"""The build: source -> export (recipes) -> validate+profile -> gate -> write, passing typed records along.

Export jobs run in parallel worker processes; measurements run one at a time so that timings are
not disturbed by a neighbouring conversion. Every stage result is cached by content.
"""
from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from edge_pipeline.building import cache, source_inputs
from edge_pipeline.building.jobs import Job, Outcome, run_job, run_lane
from edge_pipeline.building.plan import Step, bind, check_outputs, load_target
from edge_pipeline.building.writer import BuildOutcome, write_outputs
from edge_pipeline.codec import encode
from edge_pipeline.config import Config
from edge_pipeline.errors import ConfigError, EdgepipeError, InputError
from edge_pipeline.fsutil import sha256_artifact, size_bytes, zip_compressed_size
from edge_pipeline.host import host_cores, host_id, versions
from edge_pipeline.measure.validate import thresholds_for
from edge_pipeline.plugins import QuantizeSettings
from edge_pipeline.progress import Phase, Progress, ProgressEvent, no_progress
from edge_pipeline.records import (
    STATE_DIR,
    ArtifactResult,
    Exported,
    ExportJob,
    ExportResult,
    MeasureJob,
    Measurement,
    SourceJob,
    SourceOutcome,
    SourceRecord,
    StageError,
    Status,
)
from edge_pipeline.report.model import Report
from edge_pipeline.sources import check_example
from edge_pipeline.types import Target

Pending = tuple[int, Path, Job]


@dataclass(frozen=True)
class BuildOptions:
    target: str
    out_dir: Path
    config: Config
    use_cache: bool = True
    parallel_exports: int = 2
    budgets: tuple[tuple[str, float], ...] = ()   # from --budget, over the file's
    device: str | None = None                      # e.g. ssh://pi@board: measure there, not on this host
    log_file: Path | None = None                   # native libraries' output during the build, moved into it


def build(options: BuildOptions, progress: Progress = no_progress) -> Report:
    """Runs the whole pipeline and returns the report (also written under out_dir/<target>)."""
    started = time.perf_counter()
    target = load_target(options.target, options.config, dict(options.budgets))
    check_outputs(target)
    check_example(options.config.source)
    timings: dict[str, float] = {}
    workdir = cache.cache_root() / "work" / f"{target.name}-{os.getpid()}-{time.time_ns()}"
    try:
        progress(ProgressEvent("source", Phase.START))
        t0 = time.perf_counter()
        source, source_dir = _source_stage(options.config, workdir, options.use_cache)
        timings["source"] = time.perf_counter() - t0
        progress(ProgressEvent("source", Phase.DONE, source.cached))
        _check_rank(target, source)
        steps = bind(target, source.framework, source.task)
        _check_calibration(steps, source, options.config)
        t0 = time.perf_counter()
        results = _export_stage(steps, source, source_dir, target, options, progress)
        timings["export"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for step, result in zip(steps, results):
            if result.status is Status.FAILED:
                continue
            if step.runner is None:
                result.status = Status.UNVALIDATED
                result.unvalidated_reason = step.unvalidated_reason or "no runtime can run it here"
                progress(ProgressEvent(f"validate+profile {step.output.label}", Phase.SKIPPED,
                                       message=result.unvalidated_reason))
            else:
                _measure(step, step.runner, result, source_dir, target, options, progress, source.task)
        timings["validate+profile"] = time.perf_counter() - t0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return write_outputs(BuildOutcome(target, options.out_dir, options.config, options.log_file, source, source_dir,
                                      steps, results, timings, started))


def _source_stage(config: Config, workdir: Path, use_cache: bool) -> tuple[SourceRecord, Path]:
    """Runs unless nothing it read last time has changed (see source_inputs.py); it is what fingerprints the
    weights and data, and its files are content-addressed."""
    record = source_inputs.record_path(encode(config.source), cache.cache_root())
    reused = source_inputs.unchanged_source(record) if use_cache else None
    if reused is not None and (cached := cache.lookup(reused, SourceRecord)) is not None:
        return replace(cached, cached=True), reused
    job_dir = workdir / "source"
    outcome = run_job(Job("source", SourceJob(config.source, job_dir), job_dir, "source"), SourceOutcome)
    source = outcome.record
    _, source_dir = cache.stage_dir("source", {"fingerprint": source.fingerprint, "data_hash": source.data_hash,
                                               "reference_hash": source.reference_hash})
    if cache.lookup(source_dir, SourceRecord) is None:
        source_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(job_dir / "reference.npz", source_dir / "reference.npz")
        shutil.copytree(job_dir / "data", source_dir / "data")
        for saved in ("pruned", STATE_DIR):
            if (job_dir / saved).is_dir():
                shutil.copytree(job_dir / saved, source_dir / saved)
        cache.commit(source_dir, source)
    source_inputs.save_record(record, outcome.read, source_dir)
    return source, source_dir


def _check_rank(target: Target, source: SourceRecord) -> None:
    for spec in source.inputs:
        rank = len(spec.shape)
        if target.max_input_rank is not None and rank > target.max_input_rank:
            name = f" '{spec.name}'" if len(source.inputs) > 1 else ""
            raise InputError(f"the {target.name} target handles inputs of rank <= {target.max_input_rank}; this model "
                             f"takes a rank-{rank} input{name} {list(spec.shape)}")


def _check_calibration(steps: list[Step], source: SourceRecord, config: Config) -> None:
    """Refuses up front what would fail later: an int8 output without calibration data, or a calibration
    method its quantizer does not offer."""
    method, algorithms = config.quantization.calibration_method, config.quantization.algorithms or ()
    for step in steps:
        offered = step.calibration_methods if step.needs_calibration else None
        if method and offered is not None and method not in offered:
            raise ConfigError(f"quantization.calibration-method '{method}' is not offered for {step.output.label} "
                              f"(its quantizer {step.transform} offers: {', '.join(offered)})")
        missing = [a for a in algorithms if a not in step.algorithms]
        if step.algorithms and missing:
            raise ConfigError(f"quantization.algorithms {', '.join(missing)} not offered for {step.output.label} "
                              f"(its quantizer {step.transform} offers: {', '.join(step.algorithms)})")
        group = config.quantization.group_size
        if group is not None and step.group_sizes and group not in step.group_sizes:
            raise ConfigError(f"quantization.group-size {group} not offered for {step.output.label} (its quantizer "
                              f"{step.transform} offers: {', '.join(map(str, step.group_sizes))})")
        if step.needs_calibration and not source.calibration_samples:
            raise InputError(f"missing calibration data: '{step.output.label}' is quantized with calibration "
                             f"batches; set calibration = \"package.module:function\" in the config")


def _settings(step: Step, target: Target, source: SourceRecord, config: Config) -> QuantizeSettings:
    """What the step's transform receives: the `[quantization]` settings and the accuracy budget left for it."""
    q = config.quantization
    return QuantizeSettings(calibration_method=q.calibration_method, calibration_samples=q.calibration_samples,
                            max_accuracy_drop=_accuracy_budget(step, target, source), sensitivity=q.sensitivity,
                            algorithms=q.algorithms if step.algorithms else None,
                            group_size=q.group_size if step.group_sizes else None)


def _export_stage(steps: list[Step], source: SourceRecord, source_dir: Path, target: Target,
                  options: BuildOptions, progress: Progress) -> list[ArtifactResult]:
    """Cached exports are reused; the others run in lanes, one worker process per lane, side by side. A lane
    holds the steps of one exporter where it can, so its worker imports that framework once."""
    results = [ArtifactResult(step.output, exporter=step.exporter, transform=step.transform, bridge=step.bridge)
               for step in steps]
    pending: list[Pending] = []
    for index, (step, result) in enumerate(zip(steps, results)):
        settings = _settings(step, target, source, options.config)
        stage_dir, cached = _export_cache(step, source, settings, options)
        if cached is not None:
            progress(ProgressEvent(f"export {step.output.label}", Phase.START, cached=True))
            _exported(step, result, stage_dir, cached, True, progress)
            continue
        cache.discard(stage_dir)
        pruned = source_dir / "pruned" if source.pruning else None
        state = source_dir / STATE_DIR
        job = ExportJob(options.config.source, step.output.label, step.exporter, step.transform, step.bridge,
                        source_dir / "data", stage_dir / step.filename, pruned,
                        source.pruning.kind if source.pruning else None, settings, state if state.is_dir() else None,
                        step.runner, tuple(o.name for o in source.outputs))
        pending.append((index, stage_dir, Job("export", job, stage_dir / "job", step.output.label)))
    if pending:
        _run_exports(pending, steps, results, options, progress)
    return results


def _run_exports(pending: list[Pending], steps: list[Step], results: list[ArtifactResult], options: BuildOptions,
                 progress: Progress) -> None:
    workers = max(1, min(options.parallel_exports, host_cores(), len(pending)))
    threads_each = max(1, host_cores() // workers)   # side-by-side workers share the cores, never oversubscribe
    pending.sort(key=lambda item: (steps[item[0]].exporter, item[0]))
    lanes = [pending[i * len(pending) // workers:(i + 1) * len(pending) // workers] for i in range(workers)]

    def run(lane: list[Pending]) -> None:
        def done(position: int, outcome: Outcome) -> None:
            index, stage_dir, job = lane[position]
            step, result = steps[index], results[index]
            if isinstance(outcome, EdgepipeError):
                result.status, result.error = Status.FAILED, StageError.of("export", outcome)
                progress(ProgressEvent(f"export {step.output.label}", Phase.FAILED, message=str(outcome)))
            elif isinstance(outcome, ExportResult):
                artifact = stage_dir / step.filename
                exported = Exported(outcome, step.filename, sha256_artifact(artifact), size_bytes(artifact),
                                    zip_compressed_size(artifact))
                cache.commit(stage_dir, exported)
                _exported(step, result, stage_dir, exported, False, progress)
            if position + 1 < len(lane):
                progress(ProgressEvent(f"export {lane[position + 1][2].label}", Phase.START))

        progress(ProgressEvent(f"export {lane[0][2].label}", Phase.START))
        run_lane([job for _, _, job in lane], threads=threads_each, on_done=done)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(run, lanes))


def _export_cache(step: Step, source: SourceRecord, settings: QuantizeSettings,
                  options: BuildOptions) -> tuple[Path, Exported | None]:
    key_material = {"stage": "export", "source": source.fingerprint, "data": source.data_hash,
                    "output": step.output.label, "exporter": step.exporter, "transform": step.transform,
                    "bridge": step.bridge, "route": [list(s) for s in step.route],
                    "settings": encode(settings) if step.transform else None,
                    "versions": versions((*step.distributions, "edgepipe"))}
    _, stage_dir = cache.stage_dir("export", key_material)
    return stage_dir, cache.lookup(stage_dir, Exported) if options.use_cache else None


def _exported(step: Step, result: ArtifactResult, stage_dir: Path, exported: Exported, from_cache: bool,
              progress: Progress) -> None:
    result.cached["export"] = from_cache
    result.path = stage_dir / exported.file
    result.exported = exported
    progress(ProgressEvent(f"export {step.output.label}", Phase.DONE, cached=from_cache))


def _accuracy_budget(step: Step, target: Target, source: SourceRecord) -> float | None:
    """The target's max-accuracy-drop, for transforms that can keep layers float to meet it (fallback), less
    what pruning already spent."""
    budget = target.budgets.get("max-accuracy-drop")
    if not step.accuracy_budget or budget is None:
        return None
    pruning_drop = 0.0
    after = source.pruning.accuracy_after if source.pruning else None
    if after is not None and source.accuracy is not None:
        pruning_drop = max(0.0, (source.accuracy - after) * 100)
    return round(float(budget) - pruning_drop, 4)


def _measure(step: Step, runner: str, result: ArtifactResult, source_dir: Path, target: Target,
             options: BuildOptions, progress: Progress, task: str) -> None:
    label = f"validate+profile {step.output.label}"
    thresholds = thresholds_for(step.output.precision, options.config.validation,
                                target.budgets.get("max-accuracy-drop"))
    spec = options.config.source
    key_material = {"stage": "measure", "artifact": result.exported.sha256 if result.exported else None,
                    "source": source_dir.name, "runner": runner, "thresholds": encode(thresholds),
                    "profile": asdict(target.profile), "target": target.name,
                    "metric": [spec.metric, spec.metric_output], "task": task, "chunk_ms": spec.chunk_duration_ms,
                    "host": options.device or host_id(), "versions": versions((*step.distributions, "edgepipe"))}
    _, stage_dir = cache.stage_dir("measure", key_material)
    measured = cache.lookup(stage_dir, Measurement) if options.use_cache else None
    progress(ProgressEvent(label, Phase.START, cached=measured is not None))
    result.cached["measure"] = measured is not None
    if measured is None and result.path is not None:
        cache.discard(stage_dir)
        job = MeasureJob(runner, result.path, target.name, source_dir / "data", source_dir / "reference.npz",
                         thresholds, target.profile, options.device, spec, task)
        try:
            measured = run_job(Job("measure", job, stage_dir / "job", step.output.label), Measurement)
        except EdgepipeError as exc:
            result.status, result.error = Status.FAILED, StageError.of("measure", exc)
            progress(ProgressEvent(label, Phase.FAILED, message=str(exc)))
            return
        if measured.passed:
            cache.commit(stage_dir, measured)
    result.measurement = measured
    if measured is None or not measured.passed:
        reason = measured.validation.message if measured and measured.validation else "not measured"
        result.status = Status.FAILED
        message = f"{step.output.label} disagrees with the float source: {reason}"
        result.error = StageError(stage="validate", type="ValidationMismatch", message=message)
        progress(ProgressEvent(label, Phase.FAILED, message=message))
        return
    result.status = Status.OK
    progress(ProgressEvent(label, Phase.DONE, cached=result.cached["measure"]))


__all__ = ["BuildOptions", "build"]
