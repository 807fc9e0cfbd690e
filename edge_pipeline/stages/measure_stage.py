"""Validate + profile stage: run the artifact in its own runtime, compare with the source, time it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import registry
from ..host import host_cores, measured_on, package_version
from ..profiling import run_batches, time_session
from ..validate import compare, top1_accuracy
from .datafiles import load_arrays, load_bundle


def run(job: dict[str, Any]) -> dict[str, Any]:
    runner = registry.create("runner", job["runner"])
    artifact = Path(job["artifact"])
    data = load_bundle(Path(job["data"]))
    reference = load_arrays(Path(job["reference"]))["outputs"]
    batch = data.example.shape[0]
    session = runner.open(artifact, threads=1)
    outputs = run_batches(session, data.eval_inputs, batch).reshape(reference.shape)
    result: dict[str, Any] = {
        "runtime": runner.runtime,
        "runtime_version": package_version(runner.distribution),
        "validation": compare(outputs, reference, job["tolerance"]),
        "accuracy": top1_accuracy(outputs, data.eval_labels),
    }
    if not result["validation"]["passed"]:
        return result
    profile = job["profile"]
    latencies = []
    for threads in _thread_counts(profile["threads"]):
        timed = runner.open(artifact, threads=threads) if threads != 1 else session
        stats = time_session(timed, [data.example], profile["warmup"], profile["runs"])
        latencies.append({**stats, "threads": threads, "warmup": profile["warmup"],
                          "measured_on": measured_on(job["target"], threads)})
    result["latency"] = latencies
    if hasattr(runner, "describe"):
        result["runtime_details"] = runner.describe(artifact)
    return result


def _thread_counts(requested: list[int]) -> list[int]:
    """0 means all cores; duplicates (e.g. 1 and all on a 1-core host) are measured once."""
    seen: list[int] = []
    for t in requested:
        n = host_cores() if t == 0 else t
        if n not in seen:
            seen.append(n)
    return seen
