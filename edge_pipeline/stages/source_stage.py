"""Source stage: load the model, fingerprint weights and data, record the float reference outputs."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ..plugins import DataBundle
from ..sources import load_source
from ..types import SourceSpec
from ..validate import top1_accuracy
from .datafiles import hash_arrays, save_arrays, save_bundle


def run(job: dict[str, Any]) -> dict[str, Any]:
    spec = SourceSpec(**job["spec"])
    workdir = Path(job["workdir"])
    model, data = load_source(spec)
    data = _trim_to_batches(data)
    adapter = _framework(model.framework)
    reference = adapter.reference_outputs(model, data)
    data_hash = save_bundle(workdir / "data.npz", data)
    save_arrays(workdir / "reference.npz", outputs=reference)
    return {
        "framework": model.framework,
        "fingerprint": adapter.fingerprint(model),
        "data_hash": data_hash,
        "reference_hash": hash_arrays({"outputs": reference}),
        "params": adapter.count_params(model),
        "size_bytes": adapter.weights_bytes(model),
        "accuracy": top1_accuracy(reference, data.eval_labels),
        "input_shape": list(data.example.shape),
        "output_shape": list(reference.shape[1:]),
        "eval_samples": int(len(reference)),
        "calibration_samples": int(len(data.calibration)),
        "provenance": model.provenance,
    }


def _trim_to_batches(data: DataBundle) -> DataBundle:
    """Artifacts have a fixed batch size; evaluation uses whole batches only."""
    batch = data.example.shape[0]
    usable = (len(data.eval_inputs) // batch) * batch
    labels = data.eval_labels[:usable] if data.eval_labels is not None else None
    return replace(data, eval_inputs=data.eval_inputs[:usable], eval_labels=labels)


def _framework(name: str):
    import importlib

    return importlib.import_module(f"edge_pipeline.frameworks.{name}_framework")

