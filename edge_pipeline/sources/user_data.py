"""A user's example, calibration and evaluation data, whatever the framework: arrays, tensors, batches."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..errors import InputError
from ..plugins import DataBundle
from ..types import SourceSpec
from . import call_user, resolve_callable


def to_array(value: Any, what: str) -> np.ndarray:
    """numpy, torch and TensorFlow tensors alike become contiguous float32 arrays."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    try:
        array = np.ascontiguousarray(np.asarray(value, dtype=np.float32))
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} is not a tensor or array: {exc}") from exc
    if array.ndim < 1:
        raise InputError(f"{what} must have a batch dimension, got a scalar")
    return array


def example_inputs(spec: SourceSpec) -> np.ndarray:
    value = spec.example_inputs
    if value is None:
        raise InputError("'example-inputs' is required for a user model: a shape like [1, 3, 224, 224] "
                         "or 'package.module:function' returning a tensor")
    if isinstance(value, list):
        return np.random.default_rng(0).standard_normal(value).astype(np.float32)
    result = call_user(resolve_callable(value, "example-inputs", spec.base_dir), value, "example-inputs")
    if isinstance(result, (tuple, list)):
        if len(result) != 1:
            raise InputError(f"example-inputs '{value}' gave {len(result)} tensors; edgepipe handles single-input models")
        result = result[0]
    return to_array(result, f"example-inputs '{value}'")


def load_bundle(spec: SourceSpec, example: np.ndarray) -> DataBundle:
    calibration = _calibration(spec) if spec.calibration else np.empty((0, *example.shape[1:]), np.float32)
    eval_x, eval_y = _eval_data(spec) if spec.evaluate else (example, None)
    data = DataBundle(example=example, calibration=calibration, eval_inputs=eval_x, eval_labels=eval_y)
    check_sample_shape(data)
    return data


def _calibration(spec: SourceSpec) -> np.ndarray:
    ref = spec.calibration or ""
    items = call_user(resolve_callable(ref, "calibration", spec.base_dir), ref, "calibration")
    arrays = [to_array(b[0] if isinstance(b, (tuple, list)) else b, "calibration batch")
              for b in _iterate(items, ref, "calibration")]
    if not arrays:
        raise InputError(f"calibration '{ref}' yielded no batches")
    return np.concatenate(arrays)


def _eval_data(spec: SourceSpec) -> tuple[np.ndarray, np.ndarray]:
    ref = spec.evaluate or ""
    items = call_user(resolve_callable(ref, "evaluate", spec.base_dir), ref, "evaluate")
    xs, ys = [], []
    for batch in _iterate(items, ref, "evaluate"):
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise InputError(f"evaluate '{ref}' must yield (inputs, labels) batches")
        xs.append(to_array(batch[0], "evaluate inputs"))
        ys.append(to_array(batch[1], "evaluate labels").astype(np.int64).reshape(-1))
    if not xs:
        raise InputError(f"evaluate '{ref}' yielded no batches")
    return np.concatenate(xs), np.concatenate(ys)


def _iterate(items: Any, ref: str, what: str) -> Iterable[Any]:
    if isinstance(items, np.ndarray) or hasattr(items, "shape"):
        return [items]
    try:
        return list(items)
    except TypeError as exc:
        raise InputError(f"{what} '{ref}' must return an iterable of batches, got {type(items).__name__}") from exc


def check_sample_shape(data: DataBundle) -> None:
    sample = data.example.shape[1:]
    for what, array in (("evaluation", data.eval_inputs), ("calibration", data.calibration)):
        if len(array) and array.shape[1:] != sample:
            raise InputError(f"{what} inputs have sample shape {list(array.shape[1:])}, "
                             f"but example inputs have {list(sample)}")


def short(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [repr(exc)])[0][:300]
