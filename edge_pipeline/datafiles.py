"""The data a build runs on, stored once as a folder of .npy files so every worker sees exactly the same arrays.

Memory stays bounded on real data sets: the user's batches are spooled to disk as they come (never held or
concatenated whole), workers open the files memory-mapped, and `Tensors.batches` releases each batch's pages
once used, so a 2,000-image 224x224 evaluation set (1.2 GB as float32) never sits in one process's memory.
"""
from __future__ import annotations

import hashlib
import math
import shutil
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.fsutil import atomic_path
from edge_pipeline.host import check_fits, size_text
from edge_pipeline.plugins import DataBundle
from edge_pipeline.tensors import Tensors

GROUPS = ("example", "calibration", "eval_inputs")
MAX_MEMBERS = 10_000
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


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
        arr = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{arr.dtype}:{arr.shape};".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()
