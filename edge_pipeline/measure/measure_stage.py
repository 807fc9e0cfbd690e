"""Validate + profile stage: run the artifact in its own runtime, compare with the source, time it."""
from __future__ import annotations

import contextlib
import math
import platform
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge_pipeline import registry
from edge_pipeline.datafiles import load_bundle, load_outputs
from edge_pipeline.datafiles import load_plan as load_plan_text
from edge_pipeline.errors import ConfigError, StageFailed
from edge_pipeline.host import cpu_model, host_cores, measured_on, package_version
from edge_pipeline.measure.cpus import peak_rss_mb, pinned_cpus, thread_counts
from edge_pipeline.measure.load_test import load_test
from edge_pipeline.measure.memory import RssSampler, check_memory_limit
from edge_pipeline.measure.metric import load_metric
from edge_pipeline.measure.profiling import run_batches, time_session
from edge_pipeline.measure.sequence_verdict import sequence_verdict, with_real_time_factor
from edge_pipeline.measure.sequences import SequencePlan, join_calls, step_sequences
from edge_pipeline.measure.validate import Metric, metric_output, validate
from edge_pipeline.plugins import DataBundle, Runner, Session, Transport
from edge_pipeline.records import MeasureJob, Measurement
from edge_pipeline.report.model import Latency, ServerLoad, Validation
from edge_pipeline.report.strict import ReportFieldError, conform
from edge_pipeline.tensors import Tensors, align_outputs, order_inputs
from edge_pipeline.types import TEXT_GENERATION, JsonObject, JsonValue, ProfileSettings

SAMPLE_OUTPUTS = 8
TOP_OPS = 10


def create_runner(runner: str, device: str | None, transport: Transport | None = None) -> Runner:
    """The artifact's runner, wrapped by the transport the device URL's scheme names (none: this host)."""
    transport = transport or registry.transport_for(device)
    if not transport.runs_runners():
        raise ConfigError(f"--device '{device}': the {transport.name} transport cannot run a build's "
                          f"artifacts; measure a file on it with `edgepipe profile`")
    return transport.wrap_runner(registry.create(Runner, runner), device)


def run(job: MeasureJob) -> Measurement:
    if job.task == TEXT_GENERATION:
        from edge_pipeline.measure import generation_stage  # imports this module: not at the top

        return generation_stage.run(job, create_runner(job.runner, job.device))
    transport = registry.transport_for(job.device)
    runner = create_runner(job.runner, job.device, transport)
    artifact = job.artifact
    data = load_bundle(job.data)
    runtime_memory_mb = None
    if transport.in_process and runner.in_process:   # its memory is this process's
        runner.preload()
        with RssSampler() as sampler:
            session = runner.open(artifact, 1, runner.variants[0])
            for _ in range(5):
                session.run(list(order_inputs(session.input_specs, data.example).arrays))
        runtime_memory_mb = sampler.added_mb
    else:
        session = runner.open(artifact, 1, runner.variants[0])
    try:
        return _measure(job, runner, session, runtime_memory_mb)
    finally:
        session.close()      # a server session stops its server (and everything it started) here


def _measure(job: MeasureJob, runner: Runner, session: Session, runtime_memory_mb: float | None) -> Measurement:
    """Validation, then (when it passes) latency, op profile and, for a server, the load test, on `session`."""
    artifact = job.artifact
    data = load_bundle(job.data)
    reference = load_outputs(job.reference)
    example = list(order_inputs(session.input_specs, data.example).arrays)
    plan = load_plan(job.reference)
    metric = load_metric(job.spec, job.task)
    if plan is None:
        raw = run_batches(session, order_inputs(session.input_specs, data.eval_inputs), data.batch)
        outputs = align_outputs(raw, session.output_names, reference)
        validation = validate(outputs, reference, job.thresholds, data.eval_labels, metric, job.spec.metric_output,
                              job.task)
    else:
        outputs, reference, validation = validate_sequences(artifact_call(session), data, reference, plan, job,
                                                            metric)
    first = outputs.arrays[reference.names.index(validation.metric_output or metric_output(reference, None))]
    measured = Measurement(runtime=session.runtime_label or runner.runtime,
                           runtime_version=session.runtime_version or package_version(runner.distribution),
                           validation=validation, accuracy=validation.accuracy,
                           sample_outputs=first[:SAMPLE_OUTPUTS].tolist())   # the demo bundle's expected outputs
    if not measured.passed:
        return measured
    where = f"{job.target} (host-emulated)"
    if runtime_memory_mb is not None:
        check_memory_limit(artifact.name, where, runtime_memory_mb, job.profile.memory_mb)
    latency = measure_latency(runner, artifact, session, example, job.profile, job.target)
    profile, node_ms = op_profile(runner, artifact, example, job.profile.runs)
    load = load_test(session, example, job.profile, f"{runner.runtime} {measured.runtime_version or ''} on "
                     f"127.0.0.1: clients and server on this {platform.machine()} host ({cpu_model()}, "
                     f"{host_cores()} cores available), {job.target} target") if session.serves_requests else None
    return checked_figures(replace(
        measured, signature=registry.create(Runner, job.runner).signature(artifact),   # by its own runtime
        latency=latency, validation=with_real_time_factor(validation, latency, job.spec.chunk_duration_ms),
        peak_rss_mb=peak_rss_mb(), runtime_memory_mb=runtime_memory_mb,
        op_profile=profile, node_latency_ms=node_ms, server_load=load), job.runner)


def load_plan(reference: Path) -> SequencePlan | None:
    text = load_plan_text(reference)
    return SequencePlan.from_json(text) if text is not None else None


def artifact_call(session: Session) -> Callable[[Tensors, Tensors], Sequence[tuple[str, object]]]:
    """One call of an opened artifact with the source's input and output names (`one_call`: the source's outputs
    of one call, to match an artifact that renamed or reordered its outputs)."""
    def call(batch: Tensors, one_call: Tensors) -> list[tuple[str, object]]:
        raw = session.run(list(order_inputs(session.input_specs, batch).arrays))
        named = align_outputs([np.asarray(r) for r in raw], session.output_names, one_call)
        return list(zip(named.names, named.arrays))
    return call


def validate_sequences(call: Callable[[Tensors, Tensors], Sequence[tuple[str, object]]], data: DataBundle,
                       stored: Tensors, plan: SequencePlan, job: MeasureJob, metric: tuple[str, Metric]
                       ) -> tuple[Tensors, Tensors, Validation]:
    """A stateful artifact stepped over the sequences its source was (`stored`: the source's outputs, one row
    per call): every call compared as a whole, then step by step. Returns (outputs, reference, validation) laid
    out as a call-by-call run would give them."""
    dims = data.eval_inputs.dims_by_name
    one_call = Tensors(stored.names, tuple(a[0] for a in stored.arrays))
    calls = step_sequences(lambda batch: call(batch, one_call), data.eval_inputs, plan, data.batch)
    reference, outputs = join_calls(stored, plan.links, dims), join_calls(calls, plan.links, dims)
    validation = validate(outputs, reference, job.thresholds, data.eval_labels, metric, job.spec.metric_output,
                          job.task)
    return outputs, reference, sequence_verdict(validation, calls, stored, plan, job.thresholds)


def checked_figures(measured: Measurement, runner: str) -> Measurement:
    """What a runner or transport plugin measured, held to the report's own rules (finite, in range): a NaN
    latency from a board or a negative op time fails this artifact naming the runner, never reaches the gate."""
    try:
        for index, latency in enumerate(measured.latency):
            Latency.from_json(latency.to_json(), f"latency_by_threads[{index}]")
        conform(JsonValue, measured.op_profile, "op_profile")
        if measured.server_load is not None:
            ServerLoad.from_json(measured.server_load.to_json(), "server_load")
        bad = next((n for n, ms in measured.node_latency_ms.items() if not (math.isfinite(ms) and ms >= 0)), None)
        if bad is not None:
            raise ReportFieldError(f"node_latency_ms[{bad!r}] is {measured.node_latency_ms[bad]}, not a time")
    except ReportFieldError as exc:
        raise StageFailed(f"runner '{runner}' reported an impossible figure: {exc}") from None
    failing = next((lv for lv in measured.server_load.levels if lv.errors), None) if measured.server_load else None
    if failing is not None:
        raise StageFailed(f"{measured.runtime} failed {failing.errors} of {failing.requests} requests with "
                          f"{failing.concurrency} clients at once")
    return measured


def op_profile(runner: Runner, artifact: Path, sample: list[np.ndarray],
               runs: int) -> tuple[JsonObject | None, dict[str, float]]:
    """Top ops by time, one schema across runtimes (None when the runner cannot profile ops), and the time of
    every graph node the runner named (ops it traced to the same node summed): the graph overlay's."""
    profile = runner.op_profile(artifact, sample, max(5, min(runs, 50)))
    if profile is None:
        return None, {}
    ops = [o for o in profile.get("ops") or [] if isinstance(o, dict)]
    timed = [o for o in ops if isinstance(o.get("avg_ms"), (int, float))]
    node_ms: dict[str, float] = {}
    for o in timed:
        if isinstance(o.get("node"), str):
            node_ms[str(o["node"])] = node_ms.get(str(o["node"]), 0.0) + float(o["avg_ms"])   # type: ignore[arg-type]
    total = sum(float(o["avg_ms"]) for o in timed) or None   # type: ignore[arg-type]
    for o in timed:
        o["share"] = float(o["avg_ms"]) / total if total else None   # type: ignore[arg-type]
    ranked = sorted(timed, key=lambda o: -float(o["avg_ms"])) if timed else ops   # type: ignore[arg-type]
    extra = {k: v for k, v in profile.items() if k not in ("source", "ops")}   # e.g. LiteRT's invoke_floor_ms
    top = [{k: v for k, v in o.items() if k != "node"} for o in ranked[:TOP_OPS]]
    return {"source": profile.get("source"), "op_count": len(ops), "timed": bool(timed), "top": top, **extra}, node_ms


def measure_latency(runner: Runner, artifact: Path, session: Session, sample: list[np.ndarray],
                    profile: ProfileSettings, target: str) -> tuple[Latency, ...]:
    """Every thread count (and runtime variant, e.g. TF.js backends); `session` is the opened 1-thread one."""
    variants = runner.variants
    latencies = []
    cores = session.cores or host_cores()     # "all" means the device's cores on a device
    for variant in variants:
        for threads in thread_counts(profile.threads, cores):
            timed = session if (threads, variant) == (1, variants[0]) else runner.open(artifact, threads, variant)
            where = timed.device_label
            in_process = not (where or timed.times_itself)   # a child process keeps its own affinity
            try:
                with pinned_cpus(threads) if in_process else contextlib.nullcontext([]) as cpus:
                    stats = time_session(timed, sample, profile.warmup, profile.runs)
            finally:
                if timed is not session:
                    timed.close()
            label = f"{where}, {threads} thread{'s' if threads != 1 else ''}" if where else measured_on(target, threads)
            if cpus:
                label += f", pinned to CPU {','.join(map(str, cpus))}"
            if variant is not None:
                label += f", {timed.runtime_label or variant}"
            latencies.append(replace(stats, threads=threads, warmup=profile.warmup, measured_on=label,
                                     backend=variant))
    return tuple(latencies)
