"""The data a build runs on, stored once as .npz so every worker sees exactly the same arrays."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..fsutil import atomic_path
from ..plugins import DataBundle


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def save_bundle(path: Path, data: DataBundle) -> str:
    arrays = {"example": data.example, "calibration": data.calibration, "eval_inputs": data.eval_inputs}
    if data.eval_labels is not None:
        arrays["eval_labels"] = data.eval_labels
    save_arrays(path, **arrays)
    return hash_arrays(arrays)


def load_bundle(path: Path) -> DataBundle:
    a = load_arrays(path)
    return DataBundle(example=a["example"], calibration=a["calibration"],
                      eval_inputs=a["eval_inputs"], eval_labels=a.get("eval_labels"))


def hash_arrays(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{arr.dtype}:{arr.shape};".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()
