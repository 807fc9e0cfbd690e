"""`edgepipe profile`: any existing artifact (a vendor's .tflite included) through its own runtime, with the
same report schema and views as a build."""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edge_pipeline import registry
from edge_pipeline.building import cache
from edge_pipeline.building.jobs import run_job
from edge_pipeline.errors import ConfigError, InputError
from edge_pipeline.fsutil import sha256_artifact, size_bytes, zip_compressed_size
from edge_pipeline.paths import plain_name
from edge_pipeline.report.builder import artifact_report, build_report
from edge_pipeline.report.model import Report
from edge_pipeline.types import ArtifactResult, OutputSpec, ProfileSettings


def runner_for(path: Path) -> tuple[str, str]:
    """(runner name, format) from the file: a suffix a runner declares, or a folder with model.json."""
    for runner in registry.load_all("runner")[0]:
        for suffix, fmt in runner.suffixes.items():
            if (path.is_file() and path.name.endswith(suffix)) or (path.is_dir() and (path / suffix).is_file()):
                return runner.name, fmt
    raise InputError(f"{path}: no runner reads this kind of file (known: .tflite, .pte, .onnx, .ort, .ptl, "
                     f"a TF.js folder with model.json)")


def profile(path: Path, target: str, out_dir: Path, inputs: Path | None, reference: Path | None,
            profile_settings: ProfileSettings, budgets: dict[str, float], device: str | None = None) -> Report:
    """Measures `path` in its own runtime (optionally against a reference) and writes the report's views."""
    started = time.perf_counter()
    if not path.exists():
        raise ConfigError(f"artifact not found: {path}")
    if inputs is not None and not inputs.is_file():
        raise ConfigError(f"inputs file not found: {inputs}")
    runner, fmt = runner_for(path)
    transport = registry.transport_for(device)   # a malformed URL is a usage error, before any work
    job: dict[str, Any] = {"stage": "profile", "artifact": str(path.resolve()), "runner": runner, "target": target,
                           "inputs": str(inputs.resolve()) if inputs else None, "profile": asdict(profile_settings),
                           "device": device}
    if reference is not None:
        job["reference"], job["reference_runner"] = str(reference.resolve()), runner_for(reference)[0]
    workdir = cache.cache_root() / "work" / f"profile-{os.getpid()}-{time.time_ns()}"
    if transport.wrap_runner is None:   # the device's own tool times the file (adb: benchmark_model), no runner
        measured = transport.measure_artifact(path, device, profile_settings)
    else:
        try:
            measured = run_job(job, workdir, f"profile {path.name}")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    result = ArtifactResult(OutputSpec(fmt, "as-built"), status="ok", path=str(path), sha256=sha256_artifact(path),
                            size_bytes=size_bytes(path), size_compressed_bytes=zip_compressed_size(path), measure=measured)
    validation = measured.get("validation")
    if validation is not None and not validation["passed"]:
        result.status = "failed"
        result.error = {"stage": "validate", "type": "ValidationMismatch",
                        "message": f"{path.name} disagrees with {reference}: {validation['message']}"}
    entry = artifact_report(result, None, path.name, extra={
        "input_shape": measured["input_shape"], "input_dtypes": measured.get("input_dtypes"),
        "inputs": measured.get("inputs"), "outputs": measured.get("outputs")})
    source = {"framework": "artifact", "params": None, "size_bytes": entry.size_bytes, "accuracy": None,
              "fingerprint": entry.sha256, "provenance": {"kind": "profiled artifact", "path": str(path),
                                                          "reference": str(reference) if reference else None}}
    report = build_report(
        target=target, source=source, artifacts=[entry], budgets=budgets, warnings=[], timings={}, started=started,
        tools=("onnxruntime", "ai-edge-litert", "executorch", "torch", "edgepipe"),
        config={"command": "profile", "runner": runner, "inputs": str(inputs) if inputs else "generated (seed 0)",
                "profile": asdict(profile_settings)})
    from edge_pipeline.building.writer import write_views

    folder = out_dir / plain_name(path.resolve().name, "artifact name")
    folder.mkdir(parents=True, exist_ok=True)
    write_views(folder, report)
    return report
