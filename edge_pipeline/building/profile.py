"""`edgepipe profile`: any existing artifact (a vendor's .tflite included) through its own runtime, with the
same report schema and views as a build."""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from edge_pipeline import registry
from edge_pipeline.building import cache
from edge_pipeline.building.jobs import Job, run_job
from edge_pipeline.building.report_builder import artifact_report, build_report
from edge_pipeline.codec import decode
from edge_pipeline.datafiles import check_npz
from edge_pipeline.errors import ConfigError, InputError, StageFailed
from edge_pipeline.fsutil import sha256_artifact, size_bytes, zip_compressed_size
from edge_pipeline.host import DataLimits
from edge_pipeline.paths import plain_name
from edge_pipeline.plugins import Runner, Transport
from edge_pipeline.records import ArtifactResult, Exported, ExportResult, Measurement, ProfileJob, StageError, Status
from edge_pipeline.report.model import Report
from edge_pipeline.types import JsonObject, OutputSpec, ProfileSettings


def runner_for(path: Path) -> tuple[str, str]:
    """(runner name, format) from the file: a suffix a runner declares, or a folder with model.json."""
    for runner in registry.load_all(Runner)[0]:
        for suffix, fmt in runner.suffixes.items():
            if (path.is_file() and path.name.endswith(suffix)) or (path.is_dir() and (path / suffix).is_file()):
                return runner.name, fmt
    known = sorted({suffix for runner in registry.load_all(Runner)[0] for suffix in runner.suffixes})
    raise InputError(f"{path}: no runner reads this kind of file (known: {', '.join(known)}; a folder holding one "
                     f"of these files)")


def profile(path: Path, target: str, out_dir: Path, inputs: Path | None, reference: Path | None,
            profile_settings: ProfileSettings, budgets: dict[str, float], device: str | None = None) -> Report:
    """Measures `path` in its own runtime (optionally against a reference) and writes the report's views. Declared
    sizes (the `inputs` file's arrays here, the model's inputs in the worker) are held to the memory budget the
    caller set (host.applied; default: half the memory available)."""
    started = time.perf_counter()
    if not path.exists():
        raise ConfigError(f"artifact not found: {path}")
    if inputs is not None and not inputs.is_file():
        raise ConfigError(f"inputs file not found: {inputs}")
    if inputs is not None:     # its headers, against the memory budget, before a worker allocates what they declare
        check_npz(inputs, f"--inputs {inputs.name}", DataLimits.from_environ().memory_bytes)
    runner, fmt = runner_for(path)
    transport = registry.transport_for(device)   # a malformed URL is a usage error, before any work
    job = ProfileJob(path.resolve(), runner, target, inputs.resolve() if inputs else None, profile_settings, device,
                     reference.resolve() if reference else None, runner_for(reference)[0] if reference else None)
    workdir = cache.cache_root() / "work" / f"profile-{os.getpid()}-{time.time_ns()}"
    if not transport.runs_runners():   # the device's own tool times the file (adb: benchmark_model), no runner
        measured = _device_measurement(transport, path, device or "", profile_settings)
    else:
        try:
            measured = run_job(Job("profile", job, workdir, f"profile {path.name}"), Measurement)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    exported = Exported(ExportResult({}, 0.0, ()), path.name, sha256_artifact(path), size_bytes(path),
                        zip_compressed_size(path))
    result = ArtifactResult(OutputSpec(fmt, "as-built"), status=Status.OK, path=path, exported=exported,
                            measurement=measured)
    if not measured.passed and measured.validation is not None:
        result.status = Status.FAILED
        result.error = StageError(stage="validate", type="ValidationMismatch",
                                  message=f"{path.name} disagrees with {reference}: {measured.validation.message}")
    inputs_seen = measured.inputs or ()
    entry = artifact_report(result, None, path.name, extra={
        "input_shape": list(inputs_seen[0].shape) if inputs_seen else None,
        "input_dtypes": [s.dtype for s in inputs_seen], "inputs": [s.to_dict() for s in inputs_seen],
        "outputs": [s.to_dict() for s in measured.outputs or ()]})
    source: JsonObject = {"framework": "artifact", "params": None, "size_bytes": entry.size_bytes, "accuracy": None,
                          "fingerprint": entry.sha256,
                          "provenance": {"kind": "profiled artifact", "path": str(path),
                                         "reference": str(reference) if reference else None}}
    report = build_report(
        target=target, source=source, artifacts=[entry], budgets=budgets, warnings=[], timings={}, started=started,
        tools=_tools(runner, job.reference_runner),
        config={"command": "profile", "runner": runner, "inputs": str(inputs) if inputs else "generated (seed 0)",
                "profile": asdict(profile_settings)})
    from edge_pipeline.building.writer import write_views

    folder = out_dir / plain_name(path.resolve().name, "artifact name")
    folder.mkdir(parents=True, exist_ok=True)
    write_views(folder, report)
    return report


def _tools(*runners: str | None) -> tuple[str, ...]:
    """The packages whose versions the report records: the runtimes that ran the artifact (and its reference)."""
    found = (registry.plugin(Runner, name) for name in runners if name is not None)
    return tuple(dict.fromkeys((*(r.distribution for r in found if r is not None), "numpy", "edgepipe")))


def _device_measurement(transport: Transport, path: Path, url: str, settings: ProfileSettings) -> Measurement:
    """A transport's own measurement (a device tool, no runner), read as a Measurement: a plugin that returns
    something else fails with one line naming it."""
    raw = transport.measure_artifact(path, url, settings)
    try:
        measured = decode(Measurement, raw)
    except (TypeError, ValueError, KeyError) as exc:
        raise StageFailed(f"the {transport.name} transport returned a measurement edgepipe cannot read: "
                          f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(measured, Measurement):
        raise StageFailed(f"the {transport.name} transport returned {type(raw).__name__}, not a measurement")
    return measured
