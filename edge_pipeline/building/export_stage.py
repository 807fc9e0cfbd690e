"""Export stage: rebuild the source, apply the precision's transform, write the artifact atomically."""
from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from edge_pipeline import registry
from edge_pipeline.datafiles import load_bundle
from edge_pipeline.errors import InputError
from edge_pipeline.fsutil import atomic_dir, atomic_path
from edge_pipeline.plugins import DataBundle, Model
from edge_pipeline.sources import load_source
from edge_pipeline.types import SourceSpec


def run(job: dict[str, Any]) -> dict[str, Any]:
    spec = SourceSpec(**job["spec"])
    model, _ = load_source(spec)
    if job.get("pruned"):   # the source stage pruned it once; rebuild that model, do not prune again
        model = registry.load("transform", f"prune-{spec.prune['kind']}").restore(model, Path(job["pruned"]))
    data = load_bundle(Path(job["data"]))   # the exact arrays the source stage fingerprinted
    settings = job.get("quantization") or {}
    if settings.get("calibration_samples"):
        data = replace(data, calibration=data.calibration[:settings["calibration_samples"]])
    started = time.perf_counter()
    if job.get("bridge"):
        model = registry.create("transform", job["bridge"]).apply(model, data)
    transform = registry.create("transform", job["transform"]) if job.get("transform") else None
    if transform is not None and settings.get("calibration_method"):
        transform.calibration_method = settings["calibration_method"]
    if transform is not None and transform.needs_calibration and len(data.calibration) == 0:
        raise InputError(f"{job['label']} needs calibration data: set 'calibration' in the config "
                         f"to a function returning input batches")
    if transform is not None and transform.accuracy_budget:
        transform.max_accuracy_drop = job.get("max_accuracy_drop")   # fallback keeps sensitive layers float
        transform.sensitivity = settings.get("sensitivity", "on-failure")   # on-failure | always | never
    if transform is not None and transform.applies_to == "model":
        model = transform.apply(model, data)
    exporter = registry.create("exporter", job["exporter"])
    dest = Path(job["dest"])
    writer = atomic_dir if exporter.is_directory else atomic_path
    with writer(dest) as tmp:
        if exporter.onnx_based:
            metadata = _via_onnx(model, exporter, transform, data, tmp)
        elif transform is not None and transform.applies_to == "artifact":
            metadata = _then_quantize_file(model, exporter, transform, data, tmp)
        else:
            metadata = exporter.export(model, tmp)
    metadata = metadata or {}
    if "quantization" in model.provenance and "quantization" not in metadata:   # scheme, sensitivity, fallback
        metadata["quantization"] = model.provenance["quantization"]
    return {"metadata": metadata, "seconds": round(time.perf_counter() - started, 3)}


def _via_onnx(model: Model, exporter: Any, transform: Any, data: DataBundle, dest: Path) -> dict[str, Any]:
    """ONNX-based formats: export ONNX, apply an artifact transform (ORT quantization), then finish."""
    with tempfile.TemporaryDirectory(prefix="edgepipe-onnx-") as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        exporter.to_onnx(model, onnx_path)
        metadata: dict[str, Any] = {}
        if transform is not None:
            quantized = Path(tmp) / "quantized.onnx"
            metadata["quantization"] = transform.apply_artifact(onnx_path, quantized, data)
            onnx_path = quantized
        metadata.update(exporter.finish(onnx_path, dest))
    return metadata


def _then_quantize_file(model: Model, exporter: Any, transform: Any, data: DataBundle, dest: Path) -> dict[str, Any]:
    """Formats quantized after export (ai-edge-quantizer recipes on a float `.tflite`)."""
    with tempfile.TemporaryDirectory(prefix="edgepipe-float-") as tmp:
        float_path = Path(tmp) / f"float{exporter.suffix}"
        metadata = exporter.export(model, float_path) or {}
        quantization = transform.apply_artifact(float_path, dest, data)
    if "op_coverage" in quantization:   # of the final file, not the float one
        metadata = {**metadata, "op_coverage": [c for c in metadata.get("op_coverage", []) if c["stage"] == "before"]
                    + quantization.pop("op_coverage")}
    return {**metadata, "quantization": quantization}
