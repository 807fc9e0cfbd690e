"""Profile stage for an artifact edgepipe did not build: read its input signature, run it on given or
generated inputs, time it, and compare with a reference artifact when one is given."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edge_pipeline import registry
from edge_pipeline.datafiles import load_arrays
from edge_pipeline.errors import InputError
from edge_pipeline.host import package_version
from edge_pipeline.measure.measure_stage import checked_figures, create_runner, measure_latency, op_profile
from edge_pipeline.measure.profiling import run_batches
from edge_pipeline.measure.validate import thresholds_for, validate
from edge_pipeline.plugins import Runner, Session
from edge_pipeline.precision import Precision
from edge_pipeline.records import Measurement, ProfileJob
from edge_pipeline.tensors import (
    DTYPES,
    Tensors,
    TensorSpec,
    align_outputs,
    as_array,
    flatten_outputs,
    infer_batch_dims,
    order_inputs,
    random_inputs,
)

SAMPLE_OUTPUTS = 8


def run(job: ProfileJob) -> Measurement:
    artifact = job.artifact
    runner = create_runner(job.runner, job.device)
    session = runner.open(artifact, 1, runner.variants[0])
    try:
        return _profile(job, runner, session)
    finally:
        session.close()      # a server session stops its server here


def _profile(job: ProfileJob, runner: Runner, session: Session) -> Measurement:
    artifact = job.artifact
    specs = session.input_specs
    if job.inputs is not None:
        inputs = read_inputs(job.inputs, specs)
    elif specs:
        inputs = random_inputs(specs, what=artifact.name)
    else:
        raise InputError(f"{artifact.name}: its runtime does not declare input shapes: pass --inputs FILE.npz")
    batch = _batch(specs, inputs)
    outputs = _named(run_batches(session, inputs, batch), session.output_names)
    sample = [np.asarray(a, order="C") for a in inputs[:batch].arrays]
    validation = None
    if job.reference is not None and job.reference_runner is not None:
        ref_runner = registry.create(Runner, job.reference_runner)
        ref_session = ref_runner.open(job.reference, 1, ref_runner.variants[0])
        try:
            ref_inputs = order_inputs(ref_session.input_specs, inputs, f"reference {job.reference.name}")
            reference = _named(run_batches(ref_session, ref_inputs, batch), ref_session.output_names)
        finally:
            ref_session.close()
        aligned = align_outputs(list(outputs.arrays), list(outputs.names), reference)
        validation = validate(aligned, reference, thresholds_for(Precision.parse("as-built")))
    first = outputs.arrays[0][:SAMPLE_OUTPUTS]
    finite = first.dtype.kind not in "fc" or bool(np.all(np.isfinite(first)))   # JSON holds no NaN
    return checked_figures(Measurement(
        runtime=session.runtime_label or runner.runtime,
        runtime_version=session.runtime_version or package_version(runner.distribution),
        validation=validation, sample_outputs=first.tolist() if finite else None,
        latency=measure_latency(runner, artifact, session, sample, job.profile, job.target),
        op_profile=op_profile(runner, artifact, sample, job.profile.runs)[0],
        inputs=inputs[:batch].specs,
        outputs=tuple(TensorSpec(n, (batch, *a.shape[1:]), a.dtype.name)
                      for n, a in zip(outputs.names, outputs.arrays))), job.runner)


def _batch(specs: list[TensorSpec] | None, inputs: Tensors) -> int:
    """The artifact's fixed batch: its first batched input's leading dimension, else every sample at once."""
    if not inputs.sample_counts():
        return 1
    first = next((s.shape[0] for s, d in zip(specs or [], inputs.dims) if d is not None and s.shape), None)
    return first if isinstance(first, int) and first > 0 else len(inputs)


def _named(raw: list[np.ndarray], names: list[str] | None) -> Tensors:
    """The artifact's own output names, else the names a source's tuple would get (`output`, `output_0`, ...)."""
    pairs = list(zip(names, raw)) if names and len(names) == len(raw) else flatten_outputs(list(raw))
    return Tensors(tuple(n for n, _ in pairs), tuple(a for _, a in pairs))


def read_inputs(path: Path, specs: list[TensorSpec] | None) -> Tensors:
    """Arrays matched to the artifact's inputs by name, or by order for numpy's `arr_0, arr_1, ...` (and a single
    array for a single input); every missing, extra or mis-shaped input is named (exit 2)."""
    try:
        arrays = load_arrays(path)
    except ValueError as exc:
        raise InputError(f"--inputs {path.name}: cannot read it without pickle (object arrays?): {exc}") from exc
    except Exception as exc:
        raise InputError(f"--inputs {path.name} is not a readable .npz file: {type(exc).__name__}: {exc}") from exc
    if not arrays:
        raise InputError(f"--inputs {path.name} holds no arrays")
    if not specs:
        return Tensors(tuple(arrays), tuple(as_array(a, f"--inputs array '{n}'") for n, a in arrays.items()))
    names = [s.name for s in specs]
    positional = all(re.fullmatch(r"arr_\d+", k) for k in arrays) or (len(arrays) == 1 == len(names))
    if len(arrays) == 1 == len(names):      # one input, one array: whatever the array is called
        arrays = {"arr_0": next(iter(arrays.values()))}
    if positional:
        arrays = {names[int(k[4:])] if int(k[4:]) < len(names) else k: v for k, v in arrays.items()}
    missing = [n for n in names if n not in arrays]
    extra = [k for k in arrays if k not in names]
    if missing or extra:
        parts = ([f"missing input(s) {', '.join(missing)}"] if missing else []) + \
                ([f"array(s) {', '.join(extra)} match no input"] if extra else [])
        raise InputError(f"--inputs {path.name}: {'; '.join(parts)} (the artifact's inputs: "
                         f"{', '.join(f'{s.name} {list(s.shape)} {s.dtype}' for s in specs)})")
    chosen = [_checked(arrays[s.name], s, path) for s in specs]
    tensors = Tensors(tuple(names), tuple(chosen), _layout(chosen, specs))
    counts = set(tensors.sample_counts())
    if len(counts) > 1:
        raise InputError(f"--inputs {path.name}: inputs have different sample counts {sorted(counts)}")
    if counts and not counts.pop():
        raise InputError(f"--inputs {path.name}: holds zero samples")
    return tensors


def _layout(arrays: list[np.ndarray], specs: list[TensorSpec]) -> tuple[int | None, ...]:
    """A scalar has no batch dimension; arrays that are exactly one call of a fixed-shape artifact (an LSTM's
    `[layers, N, H]` state beside its `[N, T, F]` input) are that one call; otherwise samples are along axis 0."""
    if specs and all(s.is_static and tuple(a.shape) == tuple(s.shape) for a, s in zip(arrays, specs)):
        return (None,) * len(arrays)
    return infer_batch_dims(arrays, {}, [s.name for s in specs])


def _checked(array: np.ndarray, spec: TensorSpec, path: Path) -> np.ndarray:
    value = as_array(array, f"--inputs {path.name} input '{spec.name}'")
    expected = [d if isinstance(d, int) and d > 0 else None for d in spec.shape[1:]]
    if value.ndim != len(spec.shape) or any(e is not None and e != d for e, d in zip(expected, value.shape[1:])):
        raise InputError(f"--inputs {path.name}: input '{spec.name}' has shape {list(value.shape)}, the artifact "
                         f"expects {list(spec.shape)} (any number of samples)")
    wanted = np.dtype(spec.dtype) if spec.dtype in DTYPES else None
    if wanted is not None and value.dtype != wanted:
        if value.dtype.kind in "iu" and wanted.kind in "iu":
            return value.astype(wanted)        # token ids: int64 given, int32 taken (LiteRT, TF.js)
        if value.dtype.kind == "f" and wanted in (np.int8, np.uint8, np.int16):
            return value                       # real data for a quantized input: the runner quantizes it
        raise InputError(f"--inputs {path.name}: input '{spec.name}' has dtype {value.dtype.name}, the artifact "
                         f"expects {spec.dtype}")
    return value
