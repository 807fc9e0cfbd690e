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
    dense = {"accuracy": top1_accuracy(reference, data.eval_labels), "params": adapter.count_params(model),
             "size_bytes": adapter.weights_bytes(model)}
    pruning = None
    if spec.prune:
        model, pruning = _prune(model, data, spec, workdir / "pruned")
        reference = adapter.reference_outputs(model, data)   # artifacts are validated against the pruned model
        pruning["after"]["accuracy"] = top1_accuracy(reference, data.eval_labels)
        pruning["before"]["accuracy"] = dense["accuracy"]
    data_hash = save_bundle(workdir / "data.npz", data)
    save_arrays(workdir / "reference.npz", outputs=reference)
    return {
        "framework": model.framework,
        "fingerprint": adapter.fingerprint(model),
        "data_hash": data_hash,
        "reference_hash": hash_arrays({"outputs": reference}),
        "params": dense["params"],
        "size_bytes": dense["size_bytes"],
        "accuracy": dense["accuracy"],     # the trained model's: every accuracy drop is measured from it
        "pruning": pruning,
        "input_shape": list(data.example.shape),
        "output_shape": list(reference.shape[1:]),
        "eval_samples": int(len(reference)),
        "calibration_samples": int(len(data.calibration)),
        "provenance": model.provenance,
    }


def _prune(model: Any, data: DataBundle, spec: SourceSpec, folder: Path) -> tuple[Any, dict[str, Any]]:
    """Prunes (and fine-tunes) once; the export workers rebuild the result from `folder`."""
    from .. import registry
    from ..sources import call_user, resolve_callable

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
    batch = data.example.shape[0]
    usable = (len(data.eval_inputs) // batch) * batch
    labels = data.eval_labels[:usable] if data.eval_labels is not None else None
    return replace(data, eval_inputs=data.eval_inputs[:usable], eval_labels=labels)


def _framework(name: str):
    import importlib

    return importlib.import_module(f"edge_pipeline.frameworks.{name}_framework")

