"""Named tensors: the specs of a model's inputs and outputs, and batches of samples for each, dtypes kept.

Framework-free (numpy only). Every model has N inputs and M outputs; data is one array per input, in the model's
input order and in the model's own layout: samples are stacked along each tensor's batch dimension (axis 0 unless
declared: a sequence-first `[T, N, F]` input or an LSTM state `[layers, N, H]` has it at 1), and a tensor
without one (a scalar sample rate, a shared table) is held once and fed unchanged with every batch. Token ids stay
int64, masks stay bool: nothing is cast to float32 unless it was a float64 array (numpy's default).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from edge_pipeline.errors import InputError

DTYPES = ("float32", "float16", "int64", "int32", "int8", "uint8", "bool")

BatchDim = int | None     # the axis samples are stacked along; None: the tensor has no batch dimension


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output: shape (a str entry is a dynamic dimension's name), dtype and batch dimension."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str
    batch_dim: BatchDim = 0

    def to_dict(self) -> dict[str, str | int | None | list[int | str]]:
        entry: dict[str, str | int | None | list[int | str]] = {"name": self.name, "shape": list(self.shape),
                                                                "dtype": self.dtype}
        if self.batch_dim != 0:
            entry["batch_dim"] = self.batch_dim
        return entry

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) and d >= 0 for d in self.shape)


def take(array: np.ndarray, dim: BatchDim, index: slice) -> np.ndarray:
    """Samples `index` of `array` along its batch dimension (an unbatched tensor is returned whole)."""
    if dim is None or array.ndim <= dim:
        return array
    return array[(slice(None),) * dim + (index,)]


@dataclass(frozen=True)
class Tensors:
    """Samples for each named tensor, in model order; `len()` is the sample count, slicing cuts samples along
    each tensor's batch dimension. `batch_dims` empty: every tensor is batched along axis 0."""

    names: tuple[str, ...]
    arrays: tuple[np.ndarray, ...]
    batch_dims: tuple[BatchDim, ...] = ()

    def __post_init__(self) -> None:
        if len(self.names) != len(self.arrays):
            raise ValueError(f"{len(self.names)} names for {len(self.arrays)} arrays")
        if self.batch_dims and len(self.batch_dims) != len(self.names):
            raise ValueError(f"{len(self.batch_dims)} batch dimensions for {len(self.names)} tensors")
        if all(d == 0 for d in self.batch_dims):
            object.__setattr__(self, "batch_dims", ())

    def dim(self, index: int) -> BatchDim:
        return self.batch_dims[index] if self.batch_dims else 0

    @property
    def dims(self) -> tuple[BatchDim, ...]:
        return tuple(self.dim(i) for i in range(len(self.names)))

    @property
    def dims_by_name(self) -> dict[str, BatchDim]:
        return dict(zip(self.names, self.dims))

    def sample_counts(self) -> list[int]:
        """Each batched tensor's sample count (equal in consistent data)."""
        return [int(a.shape[d]) for a, d in zip(self.arrays, self.dims) if d is not None and a.ndim > d]

    def __len__(self) -> int:
        if not self.arrays:
            return 0
        counts = self.sample_counts()
        return counts[0] if counts else 1     # nothing batched: the data is one call's inputs

    def _with(self, arrays: Sequence[np.ndarray]) -> "Tensors":
        return Tensors(self.names, tuple(arrays), self.batch_dims)

    def __getitem__(self, index: slice) -> "Tensors":
        return self._with([take(a, d, index) for a, d in zip(self.arrays, self.dims)])

    @property
    def specs(self) -> tuple[TensorSpec, ...]:
        """Specs of one batch as stored (shape includes the batch dimension where there is one)."""
        return tuple(TensorSpec(n, tuple(int(d) for d in a.shape), a.dtype.name, dim)
                     for n, a, dim in zip(self.names, self.arrays, self.dims))

    def batches(self, batch: int) -> Iterator["Tensors"]:
        """Whole batches of `batch` samples (the model's fixed batch size); a ragged tail is dropped. Arrays
        mapped from disk give back their pages after each batch, so a large set is never resident at once.
        Data with no batched tensor is one call, given once."""
        if not self.sample_counts():
            yield self
            return
        for start in range(0, (len(self) // batch) * batch, batch):
            yield self._with([np.array(take(a, d, slice(start, start + batch)), order="C")
                              for a, d in zip(self.arrays, self.dims)])
            for array in self.arrays:
                release_pages(array)

    def as_dict(self) -> dict[str, np.ndarray]:
        return dict(zip(self.names, self.arrays))

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.arrays)

    @classmethod
    def empty_like(cls, other: "Tensors") -> "Tensors":
        return other[0:0]


def release_pages(array: np.ndarray) -> None:
    """Drops a read-only memory map's resident pages (they stay in the page cache): bounded RSS on big sets."""
    import mmap

    base: object = array
    while isinstance(base, np.ndarray) and not isinstance(base, np.memmap):
        base = base.base
    handle = base.__dict__.get("_mmap") if isinstance(base, np.memmap) else None
    advice = mmap.__dict__.get("MADV_DONTNEED")
    if isinstance(handle, mmap.mmap) and isinstance(advice, int):
        try:
            handle.madvise(advice)
        except (OSError, ValueError):
            pass


@runtime_checkable
class _FrameworkTensor(Protocol):
    """A torch tensor (detach) or a TensorFlow one (numpy): converted without importing either framework."""

    def numpy(self) -> object: ...


@runtime_checkable
class _Detachable(Protocol):
    def detach(self) -> "_Detachable": ...

    def cpu(self) -> _FrameworkTensor: ...


def as_array(value: object, what: str) -> np.ndarray:
    """numpy, torch and TensorFlow tensors alike become contiguous arrays of a supported dtype."""
    try:
        if isinstance(value, _Detachable):
            value = value.detach().cpu()
        if isinstance(value, _FrameworkTensor) and not isinstance(value, np.ndarray):
            value = value.numpy()
    except (NotImplementedError, RuntimeError) as exc:   # e.g. torch's meta device: a shape with no values
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InputError(f"{what} has no values to read ({first}); a tensor on the 'meta' device only has a "
                         f"shape: give real tensors") from exc
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} is not a tensor or array: {exc}") from exc
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    if array.dtype.name not in DTYPES:
        raise InputError(f"{what} has dtype {array.dtype.name}; supported: {', '.join(DTYPES)}")
    return np.asarray(array, order="C")    # not ascontiguousarray: it makes a scalar 1-D


def infer_batch_dims(arrays: Sequence[np.ndarray], declared: Mapping[str, BatchDim], names: Sequence[str]
                     ) -> tuple[BatchDim, ...]:
    """Each tensor's batch dimension: as declared, else none for a scalar and axis 0 for the rest."""
    dims: list[BatchDim] = []
    for name, array in zip(names, arrays):
        dim = declared[name] if name in declared else (None if array.ndim == 0 else 0)
        if dim is not None and dim >= array.ndim:
            raise InputError(f"input '{name}' has shape {list(array.shape)}: it has no batch dimension {dim} "
                             f"(batch-dims)")
        dims.append(dim)
    return tuple(dims)


def to_tensors(value: object, names: Sequence[str], what: str,
               batch_dims: Mapping[str, BatchDim] | None = None) -> Tensors:
    """A tensor (single input), a tuple/list (by position) or a dict (by name) as Tensors in `names` order;
    `batch_dims`: the dimensions declared for some names (others are inferred)."""
    if isinstance(value, Mapping):
        missing = [n for n in names if n not in value]
        extra = [str(k) for k in value if k not in names]
        if missing or extra:
            parts = (([f"missing {', '.join(missing)}"] if missing else [])
                     + ([f"unknown {', '.join(extra)}"] if extra else []))
            raise InputError(f"{what}: {'; '.join(parts)} (the model's inputs: {', '.join(names)})")
        items = [value[n] for n in names]
    elif isinstance(value, (tuple, list)):
        items = list(value)
    else:
        items = [value]
    if len(items) != len(names):
        raise InputError(f"{what} gave {len(items)} tensor(s); the model takes {len(names)}: {', '.join(names)}")
    arrays = tuple(as_array(v, f"{what} '{n}'") for n, v in zip(names, items))
    return Tensors(tuple(names), arrays, infer_batch_dims(arrays, batch_dims or {}, names))


def flatten_outputs(value: object, prefix: str = "output") -> list[tuple[str, object]]:
    """A tensor, tuple/list or dict of outputs as (stable name, tensor) pairs: 'output', 'output_0', 'logits'."""
    if isinstance(value, Mapping):
        pairs: list[tuple[str, object]] = []
        for key, item in value.items():
            name = str(key) if prefix == "output" else f"{prefix}.{key}"
            pairs += flatten_outputs(item, name) if isinstance(item, (Mapping, tuple, list)) else [(name, item)]
        return pairs
    if isinstance(value, (tuple, list)):
        if len(value) == 1:
            return flatten_outputs(value[0], prefix)
        pairs = []
        for i, item in enumerate(value):
            pairs += flatten_outputs(item, f"{prefix}_{i}")
        return pairs
    return [(prefix, value)]


def check_same_kind(batch: Tensors, example: Tensors, what: str, index: int) -> None:
    """Batch `index` of `what` matches the example inputs' per-sample shape, dtype and layout, input by input."""
    for i, (name, array, reference) in enumerate(zip(example.names, batch.arrays, example.arrays)):
        dim, expected = batch.dim(i), example.dim(i)
        if dim != expected:
            raise InputError(f"{what} input '{name}' has {_dim_text(dim)}, but example inputs have "
                             f"{_dim_text(expected)} (batch {index})")
        if sample_shape(array, dim) != sample_shape(reference, expected):
            raise InputError(f"{what} inputs have sample shape {sample_shape(array, dim)}, but example inputs "
                             f"have {sample_shape(reference, expected)} (input '{name}', batch {index})")
        if array.dtype != reference.dtype:
            raise InputError(f"{what} inputs have dtype {array.dtype.name}, but example inputs have "
                             f"{reference.dtype.name} (input '{name}', batch {index})")
    counts = set(batch.sample_counts())
    if len(counts) > 1:
        raise InputError(f"{what} batch {index}: inputs have different sample counts {sorted(counts)} "
                         f"(a tensor batched along another axis needs batch-dims)")


def sample_shape(array: np.ndarray, dim: BatchDim) -> list[int]:
    """One sample's shape: the array's without its batch dimension."""
    return [int(d) for i, d in enumerate(array.shape) if i != dim]


def _dim_text(dim: BatchDim) -> str:
    return "no batch dimension" if dim is None else f"batch dimension {dim}"


def random_inputs(specs: Sequence[TensorSpec], seed: int = 0, what: str = "inputs") -> Tensors:
    """Seeded data of each input's own dtype and shape: floats ~ N(0, 1), ints in [0, 8), bools at random."""
    generator = np.random.default_rng(seed)
    arrays = []
    for spec in specs:
        if not spec.is_static:
            dynamic = [str(d) for d in spec.shape if not (isinstance(d, int) and d >= 0)]
            raise InputError(f"{what}: input '{spec.name}' has dynamic dimension(s) {', '.join(dynamic)} "
                             f"(shape {list(spec.shape)}): give fixed shapes (example-inputs, or --inputs FILE.npz)")
        shape = tuple(int(d) for d in spec.shape)
        dtype = np.dtype(spec.dtype)
        if dtype == np.bool_:
            arrays.append(generator.random(shape) < 0.5)
        elif dtype.kind in "iu":
            arrays.append(generator.integers(0, 8, shape).astype(dtype))
        elif dtype in (np.float32, np.float64):    # drawn in its own dtype: no float64 copy of a large input
            arrays.append(generator.standard_normal(shape, dtype=dtype))
        else:
            arrays.append(generator.standard_normal(shape, dtype=np.float32).astype(dtype))
    return Tensors(tuple(s.name for s in specs), tuple(np.asarray(a) for a in arrays),
                   tuple(s.batch_dim for s in specs))


def collect_outputs(call: Callable[[Tensors], Sequence[tuple[str, object]]], inputs: Tensors, batch: int) -> Tensors:
    """Runs `call(batch) -> (name, tensor) pairs` over whole batches and stacks each named output."""
    names: tuple[str, ...] | None = None
    chunks: list[list[np.ndarray]] = []
    for part in inputs.batches(batch):
        pairs = call(part)
        if names is None:
            names = tuple(n for n, _ in pairs)
            chunks = [[] for _ in pairs]
        for i, (_, value) in enumerate(pairs):
            chunks[i].append(as_array(value, f"output '{names[i]}'"))
    if names is None:
        raise InputError(f"no whole batch of {batch} sample(s) to run: give at least {batch} evaluation samples")
    return Tensors(names, tuple(stack_batches(c) for c in chunks))


def stack_batches(chunks: Sequence[np.ndarray]) -> np.ndarray:
    """One output's batches as one array: concatenated along axis 0, or, for a scalar output, one per batch."""
    return np.stack(chunks) if chunks[0].ndim == 0 else np.concatenate(chunks)


def align_outputs(raw: Sequence[np.ndarray], names: Sequence[str] | None, reference: Tensors) -> Tensors:
    """An artifact's outputs in the source's order: by name when the artifact keeps the names, else by
    position, else by a unique shape. Converters rename and sometimes reorder outputs (TFLite signatures)."""
    if names and set(reference.names) <= set(names):
        lookup = dict(zip(names, raw))
        return Tensors(reference.names, tuple(lookup[n] for n in reference.names))
    if len(raw) != len(reference.names):
        raise InputError(f"the artifact has {len(raw)} output(s), the source has {len(reference.names)}: "
                         f"{', '.join(reference.names)}")
    if all(r.shape == a.shape for r, a in zip(raw, reference.arrays)):
        return Tensors(reference.names, tuple(raw))
    unused = list(range(len(raw)))
    chosen = []
    for name, array in zip(reference.names, reference.arrays):
        match = next((i for i in unused if raw[i].shape == array.shape), None)
        if match is None:
            raise InputError(f"no artifact output has the shape of output '{name}' {list(array.shape)} "
                             f"(artifact outputs: {', '.join(str(list(r.shape)) for r in raw)})")
        unused.remove(match)
        chosen.append(raw[match])
    return Tensors(reference.names, tuple(chosen))


def order_inputs(specs: Sequence[TensorSpec] | None, inputs: Tensors, what: str = "the artifact") -> Tensors:
    """`inputs` in the order an artifact takes them: by name when its names are the source's, else by position."""
    if not specs:
        return inputs
    names = [s.name for s in specs]
    if set(names) == set(inputs.names):
        lookup = inputs.as_dict()
        dims = inputs.dims_by_name
        return Tensors(tuple(names), tuple(lookup[n] for n in names), tuple(dims[n] for n in names))
    if len(names) != len(inputs.names):
        raise InputError(f"{what} takes {len(names)} input(s) ({', '.join(names)}), the data has "
                         f"{len(inputs.names)} ({', '.join(inputs.names)})")
    return Tensors(tuple(names), inputs.arrays, inputs.batch_dims)
