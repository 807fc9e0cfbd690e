"""The build: source -> transform+export -> validate+profile -> gate -> write, passing results along.

Export jobs run in parallel worker processes; measurements run one at a time so that timings are
not disturbed by a neighbouring conversion. Every stage result is cached by content.
"""
from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edge_pipeline import registry
from edge_pipeline.building import cache, source_inputs
from edge_pipeline.building.jobs import Job, run_job, run_lane
from edge_pipeline.building.plan import Step, bind, check_outputs, load_target
from edge_pipeline.building.writer import BuildOutcome, write_outputs
from edge_pipeline.config import Config
from edge_pipeline.errors import ConfigError, EdgepipeError, InputError
from edge_pipeline.fsutil import sha256_artifact, size_bytes, zip_compressed_size
from edge_pipeline.host import host_cores, host_id, versions
from edge_pipeline.measure.validate import thresholds_for
from edge_pipeline.report.model import Report
from edge_pipeline.sources import check_example
from edge_pipeline.types import ArtifactResult, Target
from edge_pipeline.version import __version__

Event = Callable[[str, str, dict[str, Any]], None]   # (stage label, state, details)


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


def build(options: BuildOptions, on_event: Event = lambda *_: None) -> "Report":
    """Runs the whole pipeline and returns the report (also written under out_dir/<target>)."""
    started = time.perf_counter()
    target = load_target(options.target, options.config, dict(options.budgets))
    check_outputs(target)
    check_example(options.config.source)
    timings: dict[str, float] = {}
    workdir = cache.cache_root() / "work" / f"{target.name}-{os.getpid()}-{time.time_ns()}"
    try:
        on_event("source", "start", {})
        t0 = time.perf_counter()
        source, source_dir = _source_stage(options.config, workdir, options.use_cache)
        timings["source"] = time.perf_counter() - t0
        on_event("source", "done", {"accuracy": source["accuracy"]})
        _check_rank(target, source)
        steps = bind(target, source["framework"])
        _check_calibration(steps, source, options.config.quantization)
        t0 = time.perf_counter()
        results = _export_stage(steps, source, source_dir, target, options, on_event)
        timings["export"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for step, result in zip(steps, results):
            if result.status == "failed":
                continue
            if step.runner is None:
                result.status = "unvalidated"
                result.export["unvalidated_reason"] = step.unvalidated_reason or "no runtime can run it here"
                on_event(f"validate+profile {step.output.label}", "skipped", {"reason": result.export["unvalidated_reason"]})
            else:
                _measure(step, result, source_dir, target, options, on_event)
        timings["validate+profile"] = time.perf_counter() - t0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return write_outputs(BuildOutcome(target, options.out_dir, options.config, options.log_file, source, source_dir,
                                      steps, results, timings, started))


def _source_stage(config: Config, workdir: Path, use_cache: bool) -> tuple[dict[str, Any], Path]:
    """Runs unless nothing it read last time has changed (see stages/source_inputs.py); it is what fingerprints
    the weights and data, and its files are content-addressed."""
    record = source_inputs.record_path(config.source.to_dict(), cache.cache_root())
    reused = source_inputs.unchanged_source(record) if use_cache else None
    if reused is not None and (source := cache.lookup(reused)) is not None:
        return {**source, "cached": True}, reused
    job_dir = workdir / "source"
    source = run_job({"stage": "source", "spec": config.source.to_dict(), "workdir": str(job_dir)},
                     job_dir, "source")
    read = source.pop("read")
    _, source_dir = cache.stage_dir("source", {k: source[k] for k in ("fingerprint", "data_hash", "reference_hash")})
    if cache.lookup(source_dir) is None:
        source_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(job_dir / "reference.npz", source_dir / "reference.npz")
        shutil.copytree(job_dir / "data", source_dir / "data")
        if (job_dir / "pruned").is_dir():
            shutil.copytree(job_dir / "pruned", source_dir / "pruned")
        cache.commit(source_dir, source)
    source_inputs.save_record(record, read, source_dir)
    return {**source, "cached": False}, source_dir


def _check_rank(target: Target, source: dict[str, Any]) -> None:
    for spec in source["inputs"]:
        rank = len(spec["shape"])
        if target.max_input_rank is not None and rank > target.max_input_rank:
            name = f" '{spec['name']}'" if len(source["inputs"]) > 1 else ""
            raise InputError(f"the {target.name} target handles inputs of rank <= {target.max_input_rank}; this model "
                             f"takes a rank-{rank} input{name} {spec['shape']}")


def _check_calibration(steps: list[Step], source: dict[str, Any], settings: dict[str, Any]) -> None:
    """Refuses up front what would fail later: an int8 output without calibration data, or a calibration
    method its quantizer does not offer."""
    method = settings.get("calibration_method")
    for step in steps:
        offered = registry.load("transform", step.transform).calibration_methods \
            if step.needs_calibration else None
        if method and offered is not None and method not in offered:
            raise ConfigError(f"quantization.calibration-method '{method}' is not offered for {step.output.label} "
                              f"(its quantizer {step.transform} offers: {', '.join(offered)})")
        if step.needs_calibration and not source["calibration_samples"]:
            raise InputError(f"missing calibration data: '{step.output.label}' is quantized with calibration "
                             f"batches; set calibration = \"package.module:function\" in the config")


def _export_stage(steps: list[Step], source: dict[str, Any], source_dir: Path, target: Target,
                  options: BuildOptions, on_event: Event) -> list[ArtifactResult]:
    """Cached exports are reused; the others run in lanes, one worker process per lane, side by side. A lane
    holds the steps of one exporter where it can, so its worker imports that framework once."""
    results = [ArtifactResult(step.output) for step in steps]
    pending: list[tuple[int, Path, Job]] = []
    for index, (step, result) in enumerate(zip(steps, results)):
        budget = _accuracy_budget(step, target, source)
        stage_dir, cached = _export_cache(step, source, budget, options)
        if cached is not None:
            on_event(f"export {step.output.label}", "start", {"cached": True})
            _exported(step, result, stage_dir, cached, True, on_event)
            continue
        cache.discard(stage_dir)
        job = {"stage": "export", "spec": options.config.source.to_dict(), "label": step.output.label,
               "exporter": step.exporter, "transform": step.transform, "bridge": step.bridge,
               "data": str(source_dir / "data"), "dest": str(stage_dir / step.filename),
               "pruned": str(source_dir / "pruned") if source.get("pruning") else None,
               "max_accuracy_drop": budget, "quantization": options.config.quantization}
        pending.append((index, stage_dir, Job(job, stage_dir / "job", step.output.label)))
    if not pending:
        return results
    workers = max(1, min(options.parallel_exports, host_cores(), len(pending)))
    threads_each = max(1, host_cores() // workers)   # side-by-side workers share the cores, never oversubscribe
    pending.sort(key=lambda item: (steps[item[0]].exporter, item[0]))
    lanes = [pending[i * len(pending) // workers:(i + 1) * len(pending) // workers] for i in range(workers)]

    def run(lane: list[tuple[int, Path, Job]]) -> None:
        def done(position: int, outcome: Any) -> None:
            index, stage_dir, job = lane[position]
            step, result = steps[index], results[index]
            if isinstance(outcome, EdgepipeError):
                result.status, result.error = "failed", {"stage": "export", **outcome.to_dict()}
                on_event(f"export {step.output.label}", "failed", {"error": str(outcome)})
            else:
                artifact = stage_dir / step.filename
                cached = {**outcome, "file": step.filename, "sha256": sha256_artifact(artifact),
                          "size_bytes": size_bytes(artifact), "size_compressed_bytes": zip_compressed_size(artifact)}
                cache.commit(stage_dir, cached)
                _exported(step, result, stage_dir, cached, False, on_event)
            if position + 1 < len(lane):
                on_event(f"export {lane[position + 1][2].label}", "start", {"cached": False})

        on_event(f"export {lane[0][2].label}", "start", {"cached": False})
        run_lane([job for _, _, job in lane], threads=threads_each, on_done=done)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(run, lanes))
    return results


def _export_cache(step: Step, source: dict[str, Any], budget: float | None,
                  options: BuildOptions) -> tuple[Path, dict[str, Any] | None]:
    key_material = {"stage": "export", "source": source["fingerprint"], "data": source["data_hash"],
                    "output": step.output.label, "exporter": step.exporter, "transform": step.transform,
                    "bridge": step.bridge, "max_accuracy_drop": budget,
                    "quantization": options.config.quantization if step.needs_calibration else None,
                    "versions": versions((*step.distributions, "edgepipe"))}
    _, stage_dir = cache.stage_dir("export", key_material)
    return stage_dir, cache.lookup(stage_dir) if options.use_cache else None


def _exported(step: Step, result: ArtifactResult, stage_dir: Path, cached: dict[str, Any], from_cache: bool,
              on_event: Event) -> None:
    result.cached["export"] = from_cache
    result.path = str(stage_dir / cached["file"])
    result.sha256, result.size_bytes = cached["sha256"], cached["size_bytes"]
    result.size_compressed_bytes = cached["size_compressed_bytes"]
    result.export = {"metadata": cached["metadata"], "seconds": cached["seconds"], "bridge": step.bridge,
                     "exporter": step.exporter, "transform": step.transform}
    on_event(f"export {step.output.label}", "done", {"cached": from_cache, "size_bytes": result.size_bytes})


def _accuracy_budget(step: Step, target: Target, source: dict[str, Any]) -> float | None:
    """The target's max-accuracy-drop, for transforms that can keep layers float to meet it (fallback)."""
    if step.transform is None or not registry.load("transform", step.transform).accuracy_budget:
        return None
    budget = target.budgets.get("max-accuracy-drop")
    if budget is None:
        return None
    pruning_drop = 0.0
    if source.get("pruning") and source["pruning"]["after"].get("accuracy") is not None:   # pruning spent some
        pruning_drop = max(0.0, (source["accuracy"] - source["pruning"]["after"]["accuracy"]) * 100)
    return round(float(budget) - pruning_drop, 4)


def _measure(step: Step, result: ArtifactResult, source_dir: Path, target: Target, options: BuildOptions,
             on_event: Event) -> None:
    label = f"validate+profile {step.output.label}"
    thresholds = thresholds_for(step.output.precision, options.config.validation, target.budgets.get("max-accuracy-drop"))
    profile = asdict(target.profile)
    spec = options.config.source.to_dict()
    key_material = {"stage": "measure", "artifact": result.sha256, "source": str(source_dir.name),
                    "runner": step.runner, "thresholds": thresholds, "profile": profile, "target": target.name,
                    "metric": [spec["metric"], spec["metric_output"]],
                    "host": options.device or host_id(), "versions": versions((step.distributions + ("edgepipe",)))}
    _, stage_dir = cache.stage_dir("measure", key_material)
    measured = cache.lookup(stage_dir) if options.use_cache else None
    on_event(label, "start", {"cached": measured is not None})
    result.cached["measure"] = measured is not None
    if measured is None:
        cache.discard(stage_dir)
        job = {"stage": "measure", "runner": step.runner, "artifact": result.path, "target": target.name,
               "data": str(source_dir / "data"), "reference": str(source_dir / "reference.npz"),
               "thresholds": thresholds, "profile": profile, "device": options.device, "spec": spec}
        try:
            measured = run_job(job, stage_dir / "job", step.output.label)
        except EdgepipeError as exc:
            result.status, result.error = "failed", {"stage": "measure", **exc.to_dict()}
            on_event(label, "failed", {"error": str(exc)})
            return
        if measured["validation"]["passed"]:
            cache.commit(stage_dir, measured)
    result.measure = measured
    validation = measured["validation"]
    if not validation["passed"]:
        result.status = "failed"
        result.error = {"stage": "validate", "type": "ValidationMismatch",
                        "message": f"{step.output.label} disagrees with the float source: {validation['message']}"}
        on_event(label, "failed", {"error": result.error["message"]})
        return
    result.status = "ok"
    on_event(label, "done", {"cached": result.cached["measure"]})


__all__ = ["BuildOptions", "build", "__version__"]
