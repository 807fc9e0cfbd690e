"""Validate + profile stage: run the artifact in its own runtime, compare with the source, time it."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge_pipeline import registry
from edge_pipeline.datafiles import load_bundle, load_outputs
from edge_pipeline.errors import ConfigError
from edge_pipeline.host import host_cores, measured_on, package_version
from edge_pipeline.measure.memory import RssSampler, check_memory_limit
from edge_pipeline.measure.profiling import run_batches, time_session
from edge_pipeline.measure.validate import metric_output, validate
from edge_pipeline.sources.metric import load_metric
from edge_pipeline.tensors import align_outputs, order_inputs
from edge_pipeline.types import SourceSpec

SAMPLE_OUTPUTS = 8


def create_runner(job: dict[str, Any]) -> Any:
    """The artifact's runner, wrapped by the transport the device URL's scheme names (none: this host)."""
    transport = registry.transport_for(job.get("device"))
    if transport.wrap_runner is None:
        raise ConfigError(f"--device '{job['device']}': the {transport.name} transport cannot run a build's "
                          f"artifacts; measure a file on it with `edgepipe profile`")
    return transport.wrap_runner(registry.create("runner", job["runner"]), job.get("device"))


def run(job: dict[str, Any]) -> dict[str, Any]:
    runner = create_runner(job)
    variants = runner.variants
    artifact = Path(job["artifact"])
    data = load_bundle(Path(job["data"]))
    reference = load_outputs(Path(job["reference"]))
    preload = runner.preload     # in-process runtimes: their memory is this process's
    if preload is not None and registry.transport_for(job.get("device")).in_process:
        preload()
        with RssSampler() as sampler:
            session = _open(runner, artifact, 1, variants[0])
            for _ in range(5):
                session.run(list(order_inputs(input_specs(session), data.example).arrays))
        runtime_memory_mb = sampler.added_mb
    else:
        session, runtime_memory_mb = _open(runner, artifact, 1, variants[0]), None
    example = list(order_inputs(input_specs(session), data.example).arrays)
    raw = run_batches(session, order_inputs(input_specs(session), data.eval_inputs), data.batch)
    outputs = align_outputs(raw, getattr(session, "output_names", None), reference)
    spec = SourceSpec(**job["spec"]) if job.get("spec") else SourceSpec()
    validation = validate(outputs, reference, job["thresholds"], data.eval_labels, load_metric(spec), spec.metric_output)
    first = outputs.arrays[reference.names.index(validation.get("metric_output") or metric_output(reference, None))]
    result: dict[str, Any] = {
        "runtime": getattr(session, "runtime_label", runner.runtime),
        "runtime_version": getattr(session, "runtime_version", None) or package_version(runner.distribution),
        "validation": validation,
        "accuracy": validation.get("accuracy"),
        "sample_outputs": first[:SAMPLE_OUTPUTS].tolist(),   # the demo bundle's expected outputs
    }
    if not result["validation"]["passed"]:
        return result
    result["signature"] = app_signature(job["runner"], artifact)
    result["latency"] = measure_latency(runner, artifact, session, example, job["profile"], job["target"])
    result["peak_rss_mb"] = peak_rss_mb()
    if runtime_memory_mb is not None:
        result["runtime_memory_mb"] = runtime_memory_mb
        check_memory_limit(artifact.name, f"{job['target']} (host-emulated)", runtime_memory_mb,
                           job["profile"].get("memory_mb"))
    result["op_profile"] = op_profile(runner, artifact, example, job["profile"]["runs"])
    return result


def app_signature(runner_name: str, artifact: Path) -> dict[str, Any] | None:
    """The tensors as an app must encode them, read here by the artifact's own runtime, so that bundling
    (in the CLI process) needs no runtime of its own."""
    runner = registry.create("runner", runner_name)
    return runner.signature(artifact) if runner.signature is not None else None


def input_specs(session: Any) -> Any:
    """The artifact's own input specs (names, shapes, dtypes), when its runtime declares them."""
    return getattr(session, "input_specs", None)


def peak_rss_mb() -> float:
    """Peak resident memory of this measuring process so far (Python + the runtime + the model), in MiB."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


TOP_OPS = 10


def op_profile(runner: Any, artifact: Path, sample: Any, runs: int) -> dict[str, Any] | None:
    """Top ops by time, one schema across runtimes; None when the runner cannot profile ops."""
    if runner.op_profile is None:
        return None
    profile = runner.op_profile(artifact, sample, max(5, min(runs, 50)))
    ops = profile["ops"]
    timed = [o for o in ops if o["avg_ms"] is not None]
    total = sum(o["avg_ms"] for o in timed) or None
    for o in timed:
        o["share"] = o["avg_ms"] / total if total else None
    ranked = sorted(timed, key=lambda o: -o["avg_ms"]) if timed else ops
    extra = {k: v for k, v in profile.items() if k not in ("source", "ops")}   # e.g. LiteRT's invoke_floor_ms
    return {"source": profile["source"], "op_count": len(ops), "timed": bool(timed), "top": ranked[:TOP_OPS], **extra}


def measure_latency(runner: Any, artifact: Path, session: Any, sample: list[Any], profile: dict[str, Any],
                    target: str) -> list[dict[str, Any]]:
    """Every thread count (and runtime variant, e.g. TF.js backends); `session` is the opened 1-thread one."""
    variants = runner.variants
    latencies = []
    cores = getattr(session, "cores", None) or host_cores()     # "all" means the device's cores on a device
    for variant in variants:
        for threads in _thread_counts(profile["threads"], cores):
            timed = session if (threads, variant) == (1, variants[0]) else _open(runner, artifact, threads, variant)
            where = getattr(timed, "device_label", None)
            in_process = not (where or hasattr(timed, "benchmark"))   # a child process keeps its own affinity
            with pinned_cpus(threads) if in_process else contextlib.nullcontext([]) as cpus:
                stats = time_session(timed, sample, profile["warmup"], profile["runs"])
            label = f"{where}, {threads} thread{'s' if threads != 1 else ''}" if where else measured_on(target, threads)
            if cpus:
                label += f", pinned to CPU {','.join(map(str, cpus))}"
            entry = {**stats, "threads": threads, "warmup": profile["warmup"], "measured_on": label}
            if variant is not None:
                entry["backend"] = variant
                entry["measured_on"] += f", {getattr(timed, 'runtime_label', variant)}"
            latencies.append(entry)
    return latencies


@contextlib.contextmanager
def pinned_cpus(threads: int) -> Iterator[list[int]]:
    """Emulates a device with fewer cores: the measuring process runs on `threads` CPUs only."""
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not available or threads >= len(available):
        yield []
        return
    os.sched_setaffinity(0, available[:threads])
    try:
        yield available[:threads]
    finally:
        os.sched_setaffinity(0, available)


def _open(runner: Any, artifact: Path, threads: int, variant: str | None) -> Any:
    return runner.open(artifact, threads=threads) if variant is None else runner.open(artifact, threads, variant)


def _thread_counts(requested: list[int], cores: int) -> list[int]:
    """0 means all cores; duplicates (e.g. 1 and all on a 1-core host) are measured once."""
    seen: list[int] = []
    for t in requested:
        n = cores if t == 0 else t
        if n not in seen:
            seen.append(n)
    return seen
