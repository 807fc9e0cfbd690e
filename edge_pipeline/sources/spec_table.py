"""`example-inputs` as a table of named specs, and `batch-dims` for a function's inputs: checked when the config
is read (one line naming the key, exit 2), and turned into specs and constants when the source is loaded.

{ name = { shape = [...], dtype = "int64", batch-dim = 1, batch = false, value = 16000 } }: `shape = []` is a
scalar, `batch-dim` the axis its samples are stacked along, `batch = false` a tensor without one, `value` a
constant instead of generated data.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edge_pipeline.errors import ConfigError
from edge_pipeline.tensors import DTYPES, BatchDim, Tensors

SPEC_KEYS = {"shape", "dtype", "batch-dim", "batch", "value"}


def check_spec_table(value: Mapping[str, object], path: str) -> None:
    """`example-inputs` as a table: { name = { shape = [...], dtype = "int64" } } (dtype defaults to float32);
    `shape = []` is a scalar; `batch-dim = 1` for a sequence-first tensor, `batch = false` for one without a batch
    dimension; `value = 16000` gives the input a constant instead of generated data."""
    if not value:
        raise ConfigError(f"'{path}' must name at least one input")
    for name, item in value.items():
        where = f"{path}.{name}"
        if not isinstance(item, dict) or set(item) - SPEC_KEYS or "shape" not in item:
            raise ConfigError(f"'{where}' must be a table {{ shape = [...], dtype = \"...\" }} (optional: "
                              f"batch-dim, batch, value)")
        shape = item["shape"]
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                                                  for d in shape):
            raise ConfigError(f"'{where}.shape' must be a list of positive integers ([] for a scalar), got {shape!r}")
        dtype = item.get("dtype", "float32")
        if dtype not in DTYPES:
            raise ConfigError(f"'{where}.dtype' must be one of: {', '.join(DTYPES)}; got {dtype!r}")
        dim = item.get("batch-dim", 0)
        if not (isinstance(dim, int) and not isinstance(dim, bool) and 0 <= dim < max(len(shape), 1)):
            raise ConfigError(f"'{where}.batch-dim' must be an axis of its shape {shape} (0 to {len(shape) - 1}), "
                              f"got {dim!r}")
        if "batch" in item and not isinstance(item["batch"], bool):
            raise ConfigError(f"'{where}.batch' must be true or false, got {item['batch']!r}")
        if "value" in item:
            _check_constant(item["value"], dtype, f"{where}.value")


def _check_constant(value: object, dtype: str, where: str) -> None:
    if isinstance(value, bool) and dtype == "bool":
        return
    if dtype == "bool" or isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"'{where}' must be a number for a {dtype} input, got {value!r}")
    kind = np.dtype(dtype)
    if kind.kind == "f" and not (np.isfinite(value) and abs(value) <= float(np.finfo(kind).max)):
        raise ConfigError(f"'{where}' must be a finite {dtype}, got {value!r}")
    if kind.kind in "iu":
        info = np.iinfo(kind)
        if not (isinstance(value, int) and info.min <= value <= info.max):
            raise ConfigError(f"'{where}' must be an integer from {info.min} to {info.max} for {dtype}, "
                              f"got {value!r}")


def check_batch_dims(value: object, path: str) -> dict[str, int | bool]:
    """`batch-dims = { h = 1, sr = false }`: where a function's example inputs hold their samples."""
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"'{path}' must be a table of input name = axis (or false for no batch dimension)")
    for name, dim in value.items():
        if not (dim is False or (isinstance(dim, int) and not isinstance(dim, bool) and 0 <= dim < 16)):
            raise ConfigError(f"'{path}.{name}' must be an axis from 0 to 15, or false; got {dim!r}")
    return dict(value)


def spec_dim(item: Mapping[str, object]) -> BatchDim:
    """A spec table's batch dimension: `batch-dim = N`, none for `batch = false` or a scalar, else 0."""
    if item.get("batch") is False or not item["shape"]:
        return None
    dim = item.get("batch-dim", 0)
    return dim if isinstance(dim, int) else 0


def with_values(tensors: Tensors, table: Mapping[str, object]) -> Tensors:
    """Inputs given a constant (`value = 16000`) hold it instead of generated data."""
    arrays = []
    for name, array in zip(tensors.names, tensors.arrays):
        item = table[name]
        constant = item.get("value") if isinstance(item, dict) else None
        arrays.append(array if constant is None else np.full(array.shape, constant, dtype=array.dtype))
    return Tensors(tensors.names, tuple(arrays), tensors.batch_dims)
