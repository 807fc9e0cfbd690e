"""Source stage: load the model, fingerprint weights and data, record the float reference outputs."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edge_pipeline.datafiles import save_bundle, save_outputs
from edge_pipeline.building.source_inputs import ReadRecorder
from edge_pipeline.errors import InputError
from edge_pipeline.measure.validate import BUILTIN_METRICS, Metric, metric_output
from edge_pipeline.plugins import DataBundle
from edge_pipeline.sources import load_source
from edge_pipeline.sources.metric import load_metric
from edge_pipeline.tensors import Tensors
from edge_pipeline.types import SourceSpec


def run(job: dict[str, Any]) -> dict[str, Any]:
    spec = SourceSpec(**job["spec"])
    workdir = Path(job["workdir"])
    recorder = ReadRecorder(workdir)
    model, data = load_source(spec, store=workdir / "data")
    data = _trim_to_batches(data)
    adapter = _framework(model.framework)
    reference = adapter.reference_outputs(model, data)
    check_reference(reference, data, spec)
    metric = load_metric(spec)
    dense = {"accuracy": source_metric(reference, data, spec, metric), "params": adapter.count_params(model),
             "size_bytes": adapter.weights_bytes(model)}
    pruning = None
    if spec.prune:
        model, pruning = _prune(model, data, spec, workdir / "pruned")
        reference = adapter.reference_outputs(model, data)   # artifacts are validated against the pruned model
        pruning["after"]["accuracy"] = source_metric(reference, data, spec, metric)
        pruning["before"]["accuracy"] = dense["accuracy"]
    data_hash = save_bundle(workdir / "data", data)
    reference_hash = save_outputs(workdir / "reference.npz", reference)
    return {
        "framework": model.framework,
        "fingerprint": adapter.fingerprint(model),
        "data_hash": data_hash,
        "reference_hash": reference_hash,
        "params": dense["params"],
        "size_bytes": dense["size_bytes"],
        "accuracy": dense["accuracy"],     # the trained model's: every accuracy drop is measured from it
        "metric": metric[0],
        "metric_output": metric_output(reference, spec.metric_output) if data.eval_labels is not None else None,
        "pruning": pruning,
        "input_shape": list(data.example.arrays[0].shape),
        "output_shape": list(reference.arrays[0].shape[1:]),
        "inputs": [s.to_dict() for s in data.example.specs],
        "outputs": [{**s.to_dict(), "shape": [data.batch, *s.shape[1:]]} for s in reference.specs],
        "eval_samples": int(len(reference)),
        "calibration_samples": int(len(data.calibration)),
        "provenance": model.provenance,
        "read": recorder.stamps(named_files(spec)),   # lets an unchanged rebuild skip this stage
    }


def named_files(spec: SourceSpec) -> list[str]:
    """The model and weights paths of a spec (a factory or example name names no file)."""
    base = Path(spec.base_dir)
    return [str(base / name) for name in (spec.model, spec.weights) if name and ":" not in name]


def source_metric(reference: Tensors, data: DataBundle, spec: SourceSpec, metric: tuple[str, Metric]) -> float | None:
    if data.eval_labels is None:
        return None
    name = metric_output(reference, spec.metric_output)
    if name not in reference.names:
        raise InputError(f"metric-output '{name}' is not an output of the model (outputs: {', '.join(reference.names)})")
    return metric[1](reference.as_dict()[name], data.eval_labels)


def check_reference(reference: Tensors, data: DataBundle, spec: SourceSpec) -> None:
    """The source's own outputs must be usable before any artifact is judged against them."""
    for name, array in zip(reference.names, reference.arrays):
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise InputError(f"the source model's own output '{name}' contains NaN or infinity on the evaluation "
                             f"inputs: check its weights and inputs")
    labels = data.eval_labels
    if labels is not None and spec.metric in BUILTIN_METRICS and len(labels):
        name = metric_output(reference, spec.metric_output)
        classes = reference.as_dict()[name].shape[-1] if name in reference.names else None
        if classes is not None and (labels.min() < 0 or labels.max() >= classes):
            raise InputError(f"evaluate labels range over [{labels.min()}, {labels.max()}], outside output "
                             f"'{name}''s {classes} classes [0, {classes - 1}]")


def _prune(model: Any, data: DataBundle, spec: SourceSpec, folder: Path) -> tuple[Any, dict[str, Any]]:
    """Prunes (and fine-tunes) once; the export workers rebuild the result from `folder`."""
    from edge_pipeline import registry
    from edge_pipeline.sources import call_user, resolve_callable

    settings = spec.prune or {}
    fine_tune = None
    if settings.get("fine_tune"):
        ref = settings["fine_tune"]
        callback = resolve_callable(ref, "fine-tune callback", spec.base_dir)
        fine_tune = lambda module: call_user(callback, ref, "fine-tune callback", module)   # noqa: E731
    transform = registry.load("transform", f"prune-{settings['kind']}")(settings["amount"], fine_tune,
                                                                         settings.get("scope", "global"))
    pruned = transform.apply(model, data)
    transform.save(pruned.module, folder)
    stats = dict(pruned.provenance["pruning"])
    stats.update(before=dict(stats["before"]), after={**stats["after"], "size_bytes": _framework(pruned.framework).weights_bytes(pruned)})
    return pruned, stats


def _trim_to_batches(data: DataBundle) -> DataBundle:
    """Artifacts have a fixed batch size; evaluation uses whole batches only."""
    batch = data.batch
    usable = (len(data.eval_inputs) // batch) * batch
    labels = data.eval_labels[:usable] if data.eval_labels is not None else None
    return replace(data, eval_inputs=data.eval_inputs[:usable], eval_labels=labels)


def _framework(name: str):
    import importlib

    return importlib.import_module(f"targets.sources.{name}_framework")

