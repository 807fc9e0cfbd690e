"""Source stage: load the model, fingerprint weights and data, record the float reference outputs."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from edge_pipeline.building.source_inputs import ReadRecorder
from edge_pipeline.config import pruner_for
from edge_pipeline.datafiles import replace_group, save_bundle, save_outputs
from edge_pipeline.errors import InputError
from edge_pipeline.measure.metric import load_metric
from edge_pipeline.measure.sequences import SequencePlan, carried_calibration, join_calls, plan_for, step_sequences
from edge_pipeline.measure.validate import CLASS_METRICS, Metric, metric_output
from edge_pipeline.numbers import is_finite
from edge_pipeline.plugins import DataBundle, Model, QuantizeSettings, Source
from edge_pipeline.records import STATE_DIR, PruningRecord, SourceJob, SourceOutcome, SourceRecord
from edge_pipeline.sources import call_user, load_source, resolve_callable, source_for
from edge_pipeline.tensors import Tensors, TensorSpec, as_array
from edge_pipeline.types import FEATURE_EXTRACTION, TEXT_GENERATION, JsonObject, SourceSpec


def run(job: SourceJob) -> SourceOutcome:
    spec, workdir = job.spec, job.workdir
    recorder = ReadRecorder(workdir)
    model, data = load_source(spec, store=workdir / "data")
    data = _trim_to_batches(data)
    source = source_for(model.framework)
    plan = sequence_plan(source, model, data, spec)
    if plan is not None:
        data = _trim_to_batches(data, plan.steps)
    if plan is not None and len(data.calibration):
        carried = carried_calibration(source.batch_call(model), data.calibration, plan, data.batch)
        data = replace(data, calibration=replace_group(workdir / "data", "calibration", carried))
    reference, calls = reference_outputs(source, model, data, plan)
    check_reference(reference, data, spec, model.task)
    metric = load_metric(spec, model.task)
    accuracy = source_metric(reference, data, spec, metric)
    params, size = source.count_params(model), source.weights_bytes(model)
    pruning = None
    if spec.prune:
        model, pruning = _prune(model, data, spec, workdir / "pruned", source, accuracy)
        reference, calls = reference_outputs(source, model, data, plan)   # artifacts are judged by the pruned one
        after = source_metric(reference, data, spec, metric)
        pruning = _with_accuracies(pruning, accuracy, after)
    if model.provenance.get("kind") == "factory" and not spec.prune:
        source.save_state(model, workdir / STATE_DIR)    # the factory's weights, as validated (see export_stage)
    data_hash = save_bundle(workdir / "data", data)
    stored = reference if calls is None or plan is None else calls      # a stateful model's: one row per call
    reference_hash = save_outputs(workdir / "reference.npz", stored, plan.to_json() if plan else None)
    record = SourceRecord(
        framework=model.framework, fingerprint=source.fingerprint(model), data_hash=data_hash,
        reference_hash=reference_hash, params=params, size_bytes=size, accuracy=accuracy, metric=metric[0],
        metric_output=metric_output(reference, spec.metric_output) if data.eval_labels is not None else None,
        pruning=pruning, input_shape=tuple(data.example.arrays[0].shape),
        output_shape=tuple(reference.arrays[0].shape[1:]), inputs=data.example.specs,
        outputs=output_specs(reference, calls, data.batch),
        eval_samples=int(len(reference)) if calls is None else len(calls.arrays[0]) * data.batch,
        calibration_samples=int(len(data.calibration)),
        provenance=model.provenance, layout=source.layout,
        task=model.task or ("classification" if data.eval_labels is not None else "tensor"))
    return SourceOutcome(record, recorder.stamps(named_files(spec)))   # stamps: an unchanged rebuild skips this


def sequence_plan(source: Source, model: Model, data: DataBundle, spec: SourceSpec) -> SequencePlan | None:
    """A model whose outputs feed its inputs (declared in [state], else matched by name, shape and dtype) is
    validated over sequences; a language model's cache is its runtime's business, not this."""
    if model.task in (TEXT_GENERATION, FEATURE_EXTRACTION):
        return None
    arrays = [(n, as_array(v, f"output '{n}'")) for n, v in source.batch_call(model)(data.example)]
    outputs = [TensorSpec(n, tuple(a.shape), a.dtype.name) for n, a in arrays]
    return plan_for(spec.state, spec.sequence_steps, data.example.specs, outputs, spec.initial_state)


def reference_outputs(source: Source, model: Model, data: DataBundle, plan: SequencePlan | None
                      ) -> tuple[Tensors, Tensors | None]:
    """The source's outputs on the evaluation data as a call-by-call run lays them out, and for a stateful
    model the same stepped over its sequences, one row per call (what is stored and compared step by step)."""
    if plan is None:
        return source.reference_outputs(model, data), None
    calls = step_sequences(source.batch_call(model), data.eval_inputs, plan, data.batch)
    return join_calls(calls, plan.links, data.eval_inputs.dims_by_name), calls


def output_specs(reference: Tensors, calls: Tensors | None, batch: int) -> tuple[TensorSpec, ...]:
    """Each output as one call gives it."""
    if calls is not None:
        return tuple(TensorSpec(n, tuple(a.shape[1:]), a.dtype.name) for n, a in zip(calls.names, calls.arrays))
    return tuple(TensorSpec(s.name, (batch, *s.shape[1:]), s.dtype) for s in reference.specs)


def named_files(spec: SourceSpec) -> list[str]:
    """The model and weights paths of a spec (a factory or example name names no file)."""
    base = Path(spec.base_dir)
    return [str(base / name) for name in (spec.model, spec.weights) if name and ":" not in name]


def source_metric(reference: Tensors, data: DataBundle, spec: SourceSpec, metric: tuple[str, Metric]) -> float | None:
    if data.eval_labels is None:
        return None
    name = metric_output(reference, spec.metric_output)
    if name not in reference.names:
        raise InputError(f"metric-output '{name}' is not an output of the model (outputs: "
                         f"{', '.join(reference.names)})")
    value = metric[1](reference.as_dict()[name], data.eval_labels)
    if value is not None and not is_finite(value):   # NaN would make every drop "no drop": nothing could fail
        raise InputError(f"metric '{metric[0]}' returned {value} on the source model's own outputs: a metric must "
                         f"return a finite number")
    return value


def check_reference(reference: Tensors, data: DataBundle, spec: SourceSpec, task: str | None = None) -> None:
    """The source's own outputs must be usable before any artifact is judged against them."""
    for name, array in zip(reference.names, reference.arrays):
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise InputError(f"the source model's own output '{name}' contains NaN or infinity on the evaluation "
                             f"inputs: check its weights and inputs")
    labels = data.eval_labels
    if labels is not None and load_metric(spec, task)[0] in CLASS_METRICS and len(labels):
        name = metric_output(reference, spec.metric_output)
        classes = reference.as_dict()[name].shape[-1] if name in reference.names else None
        if classes is not None and (labels.min() < 0 or labels.max() >= classes):
            raise InputError(f"evaluate labels range over [{labels.min()}, {labels.max()}], outside output "
                             f"'{name}''s {classes} classes [0, {classes - 1}]")


def _prune(model: Model, data: DataBundle, spec: SourceSpec, folder: Path, source: Source,
           accuracy: float | None) -> tuple[Model, PruningRecord]:
    """Prunes (and fine-tunes) once; the export workers rebuild the result from `folder`."""
    settings = spec.prune or {}
    fine_tune = None
    ref = settings.get("fine_tune")
    if isinstance(ref, str) and ref:
        callback = resolve_callable(ref, "fine-tune callback", spec.base_dir)

        def fine_tune(module: object) -> object:
            return call_user(callback, ref, "fine-tune callback", module)
    kind = str(settings.get("kind"))
    pruner = pruner_for(kind)(float(settings["amount"]), fine_tune, str(settings.get("scope", "global")))
    pruned = pruner.apply(model, data, QuantizeSettings())
    pruner.save(pruned, folder)
    stats = pruned.provenance.get("pruning")
    summary: JsonObject = dict(stats) if isinstance(stats, dict) else {}
    after = summary.get("after")
    summary["after"] = {**(after if isinstance(after, dict) else {}), "size_bytes": source.weights_bytes(pruned)}
    return pruned, PruningRecord(summary, None, kind)


def _with_accuracies(record: PruningRecord, before: float | None, after: float | None) -> PruningRecord:
    summary = dict(record.summary)
    for key, value in (("after", after), ("before", before)):
        part = summary.get(key)
        summary[key] = {**(part if isinstance(part, dict) else {}), "accuracy": value}
    return replace(record, summary=summary, accuracy_after=after)


def _trim_to_batches(data: DataBundle, steps: int = 1) -> DataBundle:
    """Artifacts have a fixed batch size; evaluation uses whole batches only (whole sequences of `steps` batches
    for a stateful model, so its outputs and labels stay aligned)."""
    batch = data.batch * steps
    usable = (len(data.eval_inputs) // batch) * batch
    if not usable and steps > 1:
        return data         # too few for one sequence: stepping says so, naming sequence-steps
    labels = data.eval_labels[:usable] if data.eval_labels is not None else None
    return replace(data, eval_inputs=data.eval_inputs[:usable], eval_labels=labels)
