"""A user's example, calibration and evaluation data, whatever the framework: named tensors of any dtype.

`example-inputs` is a shape (single input), a table of named specs, or a function returning a tensor, a
tuple (by position) or a dict (by name). Calibration batches come in the same kinds (or `(inputs, labels)`);
evaluation batches are `(inputs, labels)`. Everything is checked here, before any stage runs, and every
error names the config key and the batch. Generators are drawn lazily and bounded (see `Draw`): drawing stops at
`calibration-samples` / `evaluation-samples`, so an endless generator ends there.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.host import DataLimits, check_fits, size_text
from edge_pipeline.nesting import argument_groups, flatten_arguments, nested_order
from edge_pipeline.plugins import DataBundle
from edge_pipeline.sources.spec_table import spec_dim, with_values
from edge_pipeline.sources.user_code import call_user, resolve_callable
from edge_pipeline.tensors import (
    BatchDim,
    Tensors,
    TensorSpec,
    as_array,
    check_same_kind,
    random_inputs,
    to_tensors,
)
from edge_pipeline.types import TASK_METRICS, SourceSpec

if TYPE_CHECKING:
    from edge_pipeline.datafiles import Spool


@runtime_checkable
class ArrayLike(Protocol):
    """A numpy, torch, TensorFlow or JAX tensor: one batch, never iterated row by row as if it were many."""

    def __array__(self) -> np.ndarray: ...


def example_inputs(spec: SourceSpec, declared: Sequence[str] = ()) -> Tensors:
    """The example batch, in the model's input order. `declared`: input names the model itself states."""
    value = spec.example_inputs
    if value is None:
        raise InputError("'example-inputs' is required for a user model: a shape like [1, 3, 224, 224], a table "
                         "of named specs, or 'package.module:function' returning tensors")
    if isinstance(value, list):
        if len(declared) > 1:
            raise InputError(f"'example-inputs' is one shape, but the model takes {len(declared)} inputs "
                             f"({', '.join(declared)}): give a table of named specs or a function")
        name = declared[0] if declared else "input"
        return generated_inputs([TensorSpec(name, tuple(value), "float32")], "example-inputs")
    if isinstance(value, dict):
        specs = [TensorSpec(name, tuple(item["shape"]), item.get("dtype", "float32"), spec_dim(item))
                 for name, item in value.items()]
        return _ordered(with_values(generated_inputs(specs, "example-inputs"), value), declared, "example-inputs")
    what = f"example-inputs '{value}'"
    result = call_user(resolve_callable(value, "example-inputs", spec.base_dir), value, "example-inputs")
    result = flatten_arguments(result, declared, what)
    names = _names_for(result, declared)
    dims = _flat_dims(spec.batch_dims or {}, names)
    unknown = [name for name in dims if name not in names]
    if unknown:
        raise InputError(f"batch-dims names {', '.join(repr(n) for n in unknown)}, which the example inputs do not "
                         f"have (inputs: {', '.join(names)})")
    tensors = _ordered(to_tensors(result, names, what, dims), declared, what)
    check_finite(tensors, what)
    return tensors


def generated_inputs(specs: Sequence[TensorSpec], what: str) -> Tensors:
    """Seeded inputs of the declared shapes, once their sizes are checked against the memory budget: a shape is
    a few bytes of config that can ask for terabytes."""
    check_fits(what, specs)
    return random_inputs(specs, what=what)


def check_finite(tensors: Tensors, what: str) -> None:
    """NaN or inf in float inputs would reach the quantizer as an undefined range ("AssertionError: scale issue")
    and the comparison as undefined outputs: refused as drawn, naming the input."""
    for name, array in zip(tensors.names, tensors.arrays):
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            raise InputError(f"{what}: input '{name}' holds {bad:,} NaN or infinite value(s); edgepipe needs finite "
                             f"data (int8 scales and accuracy are undefined otherwise)")


@dataclass
class Draw:
    """Bounds drawing one of the user's generators: at `cap` samples it stops (what is left is never drawn, so an
    endless generator ends there); with no cap, data beyond the memory budget is refused rather than spooled
    until the disk is full. `cap_key`: the setting that caps it, named in that error."""

    what: str
    cap_key: str
    cap: int | None
    budget: int
    samples: int = 0
    nbytes: int = 0

    @property
    def done(self) -> bool:
        return self.cap is not None and self.samples >= self.cap

    def take(self, part: Tensors) -> Tensors:
        """`part`, cut to what the cap leaves; counted."""
        if self.cap is not None:
            part = part[:self.cap - self.samples]
        self.samples += len(part)
        self.nbytes += sum(a.nbytes for a in part.arrays)
        if self.cap is None and self.nbytes > self.budget:
            raise InputError(f"{self.what} yielded more than {size_text(self.budget)} (the memory budget) and has "
                             f"not ended: set {self.cap_key} to draw only that many samples, or raise max-memory-mb")
        return part


def _flat_dims(declared: Mapping[str, int | bool], names: Sequence[str]) -> dict[str, BatchDim]:
    """`batch-dims` per flat input: a dimension given for a tuple or dict argument holds for each of its parts."""
    dims: dict[str, BatchDim] = {}
    for name, dim in declared.items():
        group = next((g for g in argument_groups([name], names) if g.parts is not None), None)
        for part in group.parts if group is not None and group.parts is not None else (name,):
            dims[part] = None if dim is False else dim
    return dims


def _names_for(value: object, declared: Sequence[str]) -> list[str]:
    if isinstance(value, Mapping):
        return [str(k) for k in value]
    count = len(value) if isinstance(value, (tuple, list)) else 1
    if len(declared) >= count:
        return list(declared[:count])
    return ["input"] if count == 1 else [f"input_{i}" for i in range(count)]


def _ordered(tensors: Tensors, declared: Sequence[str], what: str) -> Tensors:
    """Named inputs in the model's own order (a tuple or dict argument by its flat parts); names the model does not
    take are refused."""
    declared = nested_order(declared, tensors.names) if any(n not in tensors.names for n in declared) else declared
    if not declared or list(tensors.names) == list(declared[:len(tensors.names)]):
        return tensors
    unknown = [n for n in tensors.names if n not in declared]
    if unknown:
        raise InputError(f"{what}: the model has no input named {', '.join(unknown)} "
                         f"(its inputs: {', '.join(declared)})")
    order = [n for n in declared if n in tensors.names]
    lookup = tensors.as_dict()
    dims = tensors.dims_by_name
    return Tensors(tuple(order), tuple(lookup[n] for n in order), tuple(dims[n] for n in order))


def load_bundle(spec: SourceSpec, example: Tensors, store: Path | None) -> DataBundle:
    """The user's calibration and evaluation data, checked batch by batch and spooled into `store` as they come
    (never held whole). `store=None`: only the example (an export worker reads the stored data instead)."""
    if store is None:
        return DataBundle(example=example, calibration=Tensors.empty_like(example), eval_inputs=example,
                          eval_labels=None)
    from edge_pipeline.datafiles import Spool

    calibration = _calibration(spec, example, Spool(store, "calibration")) if spec.calibration else \
        Tensors.empty_like(example)
    eval_x, eval_y = _eval_data(spec, example, Spool(store, "eval_inputs")) if spec.evaluate else (example, None)
    return DataBundle(example=example, calibration=calibration, eval_inputs=eval_x, eval_labels=eval_y)


def _calibration(spec: SourceSpec, example: Tensors, spool: Spool) -> Tensors:
    ref = spec.calibration or ""
    limits = DataLimits.from_environ()
    draw = Draw(f"calibration '{ref}'", "[quantization] calibration-samples", limits.calibration_samples,
                limits.memory_bytes)
    items = call_user(resolve_callable(ref, "calibration", spec.base_dir), ref, "calibration")
    for i, batch in enumerate(_iterate(items, ref, "calibration")):
        what = f"calibration '{ref}' batch {i}"
        inputs = flatten_arguments(_inputs_of(batch, len(example.names)), None, what)
        part = draw.take(to_tensors(inputs, example.names, what, _dims(example)))
        check_same_kind(part, example, "calibration", i)
        check_finite(part, what)
        spool.append(part)
        if draw.done:
            break
    if not spool.count:
        raise InputError(f"calibration '{ref}' yielded no samples")
    return spool.finish()


def _dims(example: Tensors) -> dict[str, BatchDim]:
    """Calibration and evaluation batches are laid out like the example inputs."""
    return example.dims_by_name


def _inputs_of(batch: object, n_inputs: int) -> object:
    """A calibration batch is the inputs, or `(inputs, labels)` as an evaluation batch would be."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2 and isinstance(batch[0], (tuple, list, Mapping)):
        return batch[0]
    if n_inputs == 1 and isinstance(batch, (tuple, list)) and batch:
        return batch[0]
    return batch


def _eval_data(spec: SourceSpec, example: Tensors, spool: Spool) -> tuple[Tensors, np.ndarray | None]:
    """`(inputs, labels)` batches; `(inputs, None)` throughout for data without labels (a voice-activity stream
    judged by its outputs alone), never mixed."""
    ref = spec.evaluate or ""
    limits = DataLimits.from_environ()
    draw = Draw(f"evaluate '{ref}'", "evaluation-samples", limits.evaluation_samples, limits.memory_bytes)
    items = call_user(resolve_callable(ref, "evaluate", spec.base_dir), ref, "evaluate")
    ys: list[np.ndarray] = []
    unlabelled: bool | None = None
    for i, batch in enumerate(_iterate(items, ref, "evaluate")):
        what = f"evaluate '{ref}' batch {i}"
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise InputError(f"{what} must be an (inputs, labels) pair (labels None for data without labels)")
        if unlabelled is not None and unlabelled != (batch[1] is None):
            raise InputError(f"{what}: labels are None in some batches and not in others")
        unlabelled = batch[1] is None
        inputs = to_tensors(flatten_arguments(batch[0], None, f"{what} inputs"), example.names, f"{what} inputs",
                            _dims(example))
        labels = None if unlabelled else _labels(batch[1], spec.metric, f"{what} labels")
        if labels is not None and len(labels) != len(inputs):
            raise InputError(f"{what}: {len(labels)} labels for {len(inputs)} input samples")
        check_same_kind(inputs, example, "evaluation", i)
        inputs = draw.take(inputs)
        check_finite(inputs, f"{what} inputs")
        spool.append(inputs)
        if labels is not None:
            ys.append(labels[:len(inputs)])
        if draw.done:
            break
    if not spool.count:
        raise InputError(f"evaluate '{ref}' yielded no samples")
    return spool.finish(), (np.concatenate(ys) if ys else None)


def _labels(value: object, metric: str, what: str) -> np.ndarray:
    labels = as_array(value, what)
    if metric not in ("top1", "top5"):
        return labels    # a custom metric (and retrieval's similarity matrix) reads them as they are
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels) & (labels == np.round(labels))):
        raise InputError(f"{what}: {metric} needs integer class ids, got non-integer values")
    return labels.astype(np.int64).reshape(-1)


def _iterate(items: object, ref: str, what: str) -> Iterator[object]:
    """The user's batches one at a time (a generator is never drawn whole); its own errors name it."""
    if isinstance(items, (ArrayLike, Mapping)):
        yield items
        return
    try:
        iterator = iter(items)   # type: ignore[call-overload]  # any iterable, or a sequence (a torch Dataset)
    except TypeError as exc:
        raise InputError(f"{what} '{ref}' must return an iterable of batches, got {type(items).__name__}") from exc
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except Exception as exc:   # the user's generator raised while we drew from it
            raise InputError(f"{what} '{ref}' raised {type(exc).__name__} while yielding batches: "
                             f"{short(exc)}") from exc
        yield batch


def describe(tensors: Tensors) -> str:
    """'[1, 1, 8, 8]' for one float input, 'input_ids [1, 16] int64, mask [1, 16] bool' for several."""
    if len(tensors.names) == 1 and tensors.arrays[0].dtype == np.float32:
        return str(list(tensors.arrays[0].shape))
    return ", ".join(f"{n} {list(a.shape)} {a.dtype.name}" for n, a in zip(tensors.names, tensors.arrays))


def short(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [repr(exc)])[0][:300]
