"""The data a build runs on, stored once as .npz so every worker sees exactly the same arrays."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..fsutil import atomic_path
from ..plugins import DataBundle
from ..tensors import Tensors

GROUPS = ("example", "calibration", "eval_inputs")


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def tensors_to_arrays(group: str, tensors: Tensors) -> dict[str, np.ndarray]:
    """`group.names` (a string array) and `group.0`, `group.1`, ... in order."""
    arrays = {f"{group}.{i}": a for i, a in enumerate(tensors.arrays)}
    arrays[f"{group}.names"] = np.array(tensors.names, dtype=str)
    return arrays


def tensors_from_arrays(group: str, arrays: dict[str, np.ndarray]) -> Tensors:
    names = tuple(str(n) for n in arrays[f"{group}.names"])
    return Tensors(names, tuple(arrays[f"{group}.{i}"] for i in range(len(names))))


def save_bundle(path: Path, data: DataBundle) -> str:
    arrays: dict[str, np.ndarray] = {}
    for group in GROUPS:
        arrays.update(tensors_to_arrays(group, getattr(data, group)))
    if data.eval_labels is not None:
        arrays["eval_labels"] = data.eval_labels
    save_arrays(path, **arrays)
    return hash_arrays(arrays)


def load_bundle(path: Path) -> DataBundle:
    a = load_arrays(path)
    example, calibration, eval_inputs = (tensors_from_arrays(g, a) for g in GROUPS)
    return DataBundle(example=example, calibration=calibration, eval_inputs=eval_inputs, eval_labels=a.get("eval_labels"))


def save_outputs(path: Path, outputs: Tensors) -> str:
    arrays = tensors_to_arrays("outputs", outputs)
    save_arrays(path, **arrays)
    return hash_arrays(arrays)


def load_outputs(path: Path) -> Tensors:
    return tensors_from_arrays("outputs", load_arrays(path))


def hash_arrays(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{arr.dtype}:{arr.shape};".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()
