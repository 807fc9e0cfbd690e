"""The data a build runs on, stored once as a folder of .npy files so every worker sees exactly the same arrays.

Memory stays bounded on real data sets: the user's batches are spooled to disk as they come (never held or
concatenated whole), workers open the files memory-mapped, and `Tensors.batches` releases each batch's pages
once used, so a 2,000-image 224x224 evaluation set (1.2 GB as float32) never sits in one process's memory.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np

from edge_pipeline.fsutil import atomic_path
from edge_pipeline.plugins import DataBundle
from edge_pipeline.tensors import Tensors

GROUPS = ("example", "calibration", "eval_inputs")


class Spool:
    """Appends batches of one named group to `.npy` files, one per input, without holding them in memory."""

    def __init__(self, folder: Path, group: str):
        self.folder, self.group = folder, group
        self.names: tuple[str, ...] = ()
        self._raw: list = []
        self._shapes: list[tuple[int, ...]] = []
        self._dtypes: list[np.dtype] = []
        self.count = 0

    def append(self, batch: Tensors) -> None:
        if not self._raw:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.names = batch.names
            self._raw = [open(self.folder / f"{self.group}.{i}.raw", "wb") for i in range(len(batch.names))]
            self._shapes = [a.shape[1:] for a in batch.arrays]
            self._dtypes = [a.dtype for a in batch.arrays]
        for fh, array in zip(self._raw, batch.arrays):
            fh.write(np.ascontiguousarray(array).tobytes())
        self.count += len(batch)

    def finish(self) -> Tensors:
        """Closes the spool and opens what it wrote, memory-mapped."""
        for i, fh in enumerate(self._raw):
            fh.close()
            _raw_to_npy(self.folder / f"{self.group}.{i}.raw", self.folder / f"{self.group}.{i}.npy",
                        (self.count, *self._shapes[i]), self._dtypes[i])
        np.save(self.folder / f"{self.group}.names.npy", np.array(self.names, dtype=str))
        return _open_group(self.folder, self.group)


def _raw_to_npy(raw: Path, npy: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
    with open(npy, "wb") as out:
        np.lib.format.write_array_header_2_0(out, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                   "fortran_order": False, "shape": shape})
        with open(raw, "rb") as src:
            shutil.copyfileobj(src, out, 16 << 20)
    raw.unlink()


def _open_group(folder: Path, group: str) -> Tensors:
    names = tuple(str(n) for n in np.load(folder / f"{group}.names.npy", allow_pickle=False))
    return Tensors(names, tuple(np.load(folder / f"{group}.{i}.npy", mmap_mode="r", allow_pickle=False)
                                for i in range(len(names))))


def _write_group(folder: Path, group: str, tensors: Tensors) -> None:
    if (folder / f"{group}.names.npy").is_file():     # spooled there already
        return
    for i, array in enumerate(tensors.arrays):
        np.save(folder / f"{group}.{i}.npy", np.ascontiguousarray(array), allow_pickle=False)
    np.save(folder / f"{group}.names.npy", np.array(tensors.names, dtype=str))


def save_bundle(folder: Path, data: DataBundle) -> str:
    """Writes what is not on disk yet (in-memory data: the built-in examples) and returns the content hash."""
    folder.mkdir(parents=True, exist_ok=True)
    for group, tensors in zip(GROUPS, (data.example, data.calibration, data.eval_inputs)):
        _write_group(folder, group, tensors)
    if data.eval_labels is not None and not (folder / "eval_labels.npy").is_file():
        np.save(folder / "eval_labels.npy", np.ascontiguousarray(data.eval_labels), allow_pickle=False)
    return hash_folder(folder)


def load_bundle(folder: Path) -> DataBundle:
    """The stored data, memory-mapped; evaluation cut to whole batches of the artifact's batch size."""
    example, calibration, eval_inputs = (_open_group(folder, g) for g in GROUPS)
    example = Tensors(example.names, tuple(np.array(a) for a in example.arrays))   # one batch: in memory, writable
    labels_file = folder / "eval_labels.npy"
    labels = np.load(labels_file, allow_pickle=False) if labels_file.is_file() else None
    usable = (len(eval_inputs) // len(example)) * len(example)
    if labels is not None:
        usable = min(usable, len(labels))
        labels = labels[:usable]
    return DataBundle(example=example, calibration=calibration, eval_inputs=eval_inputs[:usable], eval_labels=labels)


def save_outputs(path: Path, outputs: Tensors) -> str:
    arrays = {f"outputs.{i}": a for i, a in enumerate(outputs.arrays)}
    arrays["outputs.names"] = np.array(outputs.names, dtype=str)
    save_arrays(path, **arrays)
    return hash_arrays(arrays)


def load_outputs(path: Path) -> Tensors:
    arrays = load_arrays(path)
    names = tuple(str(n) for n in arrays["outputs.names"])
    return Tensors(names, tuple(arrays[f"outputs.{i}"] for i in range(len(names))))


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def hash_folder(folder: Path) -> str:
    """sha256 over every file's name and bytes, read in chunks."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.npy")):
        digest.update(f"{path.name};".encode())
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(16 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def hash_arrays(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{arr.dtype}:{arr.shape};".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()
