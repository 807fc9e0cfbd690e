"""The data a build runs on, stored once as a folder of .npy files so every worker sees exactly the same arrays.

Memory stays bounded on real data sets: the user's batches are spooled to disk as they come (never held or
concatenated whole), workers open the files memory-mapped, and `Tensors.batches` releases each batch's pages
once used, so a 2,000-image 224x224 evaluation set (1.2 GB as float32) never sits in one process's memory.
"""
from __future__ import annotations

import hashlib
import math
import os
import shutil
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.fsutil import atomic_path
from edge_pipeline.host import check_fits, size_text
from edge_pipeline.plugins import DataBundle
from edge_pipeline.tensors import BatchDim, Tensors

GROUPS = ("example", "calibration", "eval_inputs")
MAX_MEMBERS = 10_000
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


class Spool:
    """Appends batches of one named group to `.npy` files, one per input, without holding them in memory.
    Batched tensors are written sample-major (their batch dimension first) and read back in the model's layout
    as views; a tensor without a batch dimension is held once and must not change from batch to batch."""

    def __init__(self, folder: Path, group: str):
        self.folder, self.group = folder, group
        self.names: tuple[str, ...] = ()
        self.dims: tuple[BatchDim, ...] = ()
        self._raw: list = []
        self._shapes: list[tuple[int, ...]] = []
        self._dtypes: list[np.dtype] = []
        self._fixed: dict[int, np.ndarray] = {}
        self.count = 0

    def append(self, batch: Tensors) -> None:
        if not self._raw:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.names, self.dims = batch.names, batch.dims
            self._raw = [open(self.folder / f"{self.group}.{i}.raw", "wb") for i in range(len(batch.names))]
            self._shapes = [_sample_major(a, d).shape[1:] for a, d in zip(batch.arrays, self.dims)]
            self._dtypes = [a.dtype for a in batch.arrays]
            self._fixed = {i: np.array(a) for i, (a, d) in enumerate(zip(batch.arrays, self.dims)) if d is None}
        for i, (fh, array) in enumerate(zip(self._raw, batch.arrays)):
            if i in self._fixed:
                if array.shape != self._fixed[i].shape or not np.array_equal(array, self._fixed[i]):
                    raise InputError(f"{self.group.replace('_', ' ')}: input '{self.names[i]}' has no batch "
                                     f"dimension, but its value changes between batches (give it a batch "
                                     f"dimension, or one value)")
                continue
            fh.write(np.asarray(_sample_major(array, self.dims[i]), order="C").tobytes())
        self.count += len(batch)

    def finish(self) -> Tensors:
        """Closes the spool and opens what it wrote, memory-mapped."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for i, fh in enumerate(self._raw):
            fh.close()
            raw = self.folder / f"{self.group}.{i}.raw"
            if i in self._fixed:
                raw.unlink()
                np.save(self.folder / f"{self.group}.{i}.npy", self._fixed[i], allow_pickle=False)
                continue
            _raw_to_npy(raw, self.folder / f"{self.group}.{i}.npy", (self.count, *self._shapes[i]), self._dtypes[i])
        _save_index(self.folder, self.group, self.names, self.dims)
        return _open_group(self.folder, self.group)


def _sample_major(array: np.ndarray, dim: BatchDim) -> np.ndarray:
    return array if not dim else np.moveaxis(array, dim, 0)


def _save_index(folder: Path, group: str, names: tuple[str, ...], dims: tuple[BatchDim, ...]) -> None:
    np.save(folder / f"{group}.names.npy", np.array(names, dtype=str))
    if any(d != 0 for d in dims):
        np.save(folder / f"{group}.batch_dims.npy", np.array([-1 if d is None else d for d in dims], dtype=np.int64))


def _raw_to_npy(raw: Path, npy: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
    with open(npy, "wb") as out:
        np.lib.format.write_array_header_2_0(out, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                   "fortran_order": False, "shape": shape})
        with open(raw, "rb") as src:
            shutil.copyfileobj(src, out, 16 << 20)
    raw.unlink()


def _open_group(folder: Path, group: str) -> Tensors:
    names = tuple(str(n) for n in np.load(folder / f"{group}.names.npy", allow_pickle=False))
    index = folder / f"{group}.batch_dims.npy"
    dims: tuple[BatchDim, ...] = tuple(None if d < 0 else int(d) for d in np.load(index, allow_pickle=False)) \
        if index.is_file() else (0,) * len(names)
    arrays = []
    for i, dim in enumerate(dims):
        stored = np.load(folder / f"{group}.{i}.npy", mmap_mode=None if dim is None else "r", allow_pickle=False)
        arrays.append(stored if not dim else np.moveaxis(stored, 0, dim))
    return Tensors(names, tuple(arrays), dims)


def replace_group(folder: Path, group: str, batches: Iterable[Tensors]) -> Tensors:
    """Stored group `group` rewritten from `batches` (which may read the old one as they go): spooled beside
    it, then moved over it file by file, so the old files stay readable until the new ones are complete."""
    staging = folder / f".{group}.new"
    shutil.rmtree(staging, ignore_errors=True)
    spool = Spool(staging, group)
    for part in batches:
        spool.append(part)
    spool.finish()
    for old in folder.glob(f"{group}.*.npy"):
        old.unlink()
    for new in staging.iterdir():
        os.replace(new, folder / new.name)
    staging.rmdir()
    return _open_group(folder, group)


def _write_group(folder: Path, group: str, tensors: Tensors) -> None:
    if (folder / f"{group}.names.npy").is_file():     # spooled there already
        return
    for i, (array, dim) in enumerate(zip(tensors.arrays, tensors.dims)):
        np.save(folder / f"{group}.{i}.npy", np.asarray(_sample_major(array, dim), order="C"), allow_pickle=False)
    _save_index(folder, group, tensors.names, tensors.dims)


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
    example = Tensors(example.names, tuple(np.array(a) for a in example.arrays), example.batch_dims)   # in memory
    labels_file = folder / "eval_labels.npy"
    labels = np.load(labels_file, allow_pickle=False) if labels_file.is_file() else None
    usable = (len(eval_inputs) // len(example)) * len(example)
    if labels is not None:
        usable = min(usable, len(labels))
        labels = labels[:usable]
    return DataBundle(example=example, calibration=calibration, eval_inputs=eval_inputs[:usable], eval_labels=labels)


def save_outputs(path: Path, outputs: Tensors, plan: str | None = None) -> str:
    """The reference outputs; `plan`: how they were produced when not call by call (a stateful model's
    sequences, as JSON), so the artifact is run the same way."""
    arrays = {f"outputs.{i}": a for i, a in enumerate(outputs.arrays)}
    arrays["outputs.names"] = np.array(outputs.names, dtype=str)
    if outputs.batch_dims:
        arrays["outputs.batch_dims"] = np.array([-1 if d is None else d for d in outputs.dims], dtype=np.int64)
    if plan is not None:
        arrays["outputs.plan"] = np.array(plan, dtype=str)
    save_arrays(path, **arrays)
    return hash_arrays(arrays)


def load_outputs(path: Path) -> Tensors:
    arrays = load_arrays(path)
    names = tuple(str(n) for n in arrays["outputs.names"])
    dims = tuple(None if d < 0 else int(d) for d in arrays["outputs.batch_dims"]) \
        if "outputs.batch_dims" in arrays else ()
    return Tensors(names, tuple(arrays[f"outputs.{i}"] for i in range(len(names))), dims)


def load_plan(path: Path) -> str | None:
    """The plan `save_outputs` recorded beside the reference outputs (None: they were computed call by call)."""
    with np.load(path, allow_pickle=False) as npz:
        return str(npz["outputs.plan"]) if "outputs.plan" in npz.files else None


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """An .npz file's arrays, each member's header checked first (`read_headers`)."""
    read_headers(path, path.name)
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@dataclass(frozen=True)
class ArrayHeader:
    """One .npz member as its .npy header declares it, known before any of its data is read."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    itemsize: int
    data_bytes: int      # what the member holds after its header (the zip's declared uncompressed size)

    @property
    def declared_bytes(self) -> int:
        return math.prod(self.shape) * self.itemsize


def check_npz(path: Path, what: str, budget: int) -> tuple[ArrayHeader, ...]:
    """The members of a user's .npz, refused (one line naming the array) when one is not a plain numeric array,
    declares more data than it holds, or when together they exceed `budget` bytes: all before np.load allocates.
    A 1 MB file that declared a 4 GiB array used to reach 1.1 GB of memory before failing."""
    headers = read_headers(path, what)
    check_fits(what, headers, budget, kind="array")
    return headers


def read_headers(path: Path, what: str) -> tuple[ArrayHeader, ...]:
    """Every member's .npy header, read from the zip without its data; np.load would allocate what a header
    declares, so a header that declares more than the member holds, or Python objects, is refused here."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_MEMBERS:
                raise InputError(f"{what} holds {len(members):,} arrays (more than {MAX_MEMBERS:,})")
            return tuple(_header(archive, member, what) for member in members)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
        raise InputError(f"{what} is not a readable .npz file: {type(exc).__name__}: {exc}") from exc


def _header(archive: zipfile.ZipFile, member: zipfile.ZipInfo, what: str) -> ArrayHeader:
    name = member.filename.removesuffix(".npy")
    if not member.filename.endswith(".npy"):
        raise InputError(f"{what}: member {member.filename[:80]!r} is not a .npy array")
    with archive.open(member) as fh:
        try:
            version = np.lib.format.read_magic(fh)
            if version not in HEADER_READERS:
                raise ValueError(f"format version {version[0]}.{version[1]} is not read (1.0 and 2.0 are)")
            shape, _, dtype = HEADER_READERS[version](fh)
            offset = fh.tell()
        except ValueError as exc:
            raise InputError(f"{what}: array '{name}' has no valid .npy header: {exc}") from exc
    if dtype.hasobject:
        raise InputError(f"{what}: array '{name}' holds Python objects (dtype {dtype}): only numeric arrays are read, "
                         f"never unpickled")
    header = ArrayHeader(name, tuple(shape), dtype.name, dtype.itemsize, member.file_size - offset)
    if header.declared_bytes != header.data_bytes:
        raise InputError(f"{what}: array '{name}' declares shape {list(shape)} {dtype.name} "
                         f"({size_text(header.declared_bytes)}) but holds {size_text(max(header.data_bytes, 0))} of "
                         f"data: refused before reading")
    return header


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
        arr = np.asarray(arrays[name], order="C")
        digest.update(f"{name}:{arr.dtype}:{arr.shape};".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()
