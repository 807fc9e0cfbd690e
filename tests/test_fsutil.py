"""Atomic writes: a failure leaves neither a partial file nor a changed destination."""
from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from edge_pipeline.fsutil import DiskFull, atomic_path, replace_dir, sha256_file, zip_compressed_size


def test_success_renames_into_place(tmp_path: Path) -> None:
    dest = tmp_path / "a" / "model.pte"
    with atomic_path(dest) as tmp:
        assert tmp.parent == dest.parent and tmp.name.endswith(".partial")
        tmp.write_bytes(b"abc")
    assert dest.read_bytes() == b"abc" and os.listdir(dest.parent) == ["model.pte"]


def test_failure_keeps_the_old_file_and_removes_the_partial(tmp_path: Path) -> None:
    dest = tmp_path / "model.tflite"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("converter died")
    assert dest.read_bytes() == b"old" and os.listdir(tmp_path) == ["model.tflite"]


def test_disk_full_is_reported_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(DiskFull, match="disk full while writing .*nothing was written"):
        with atomic_path(tmp_path / "m.pte") as tmp:
            tmp.write_bytes(b"x")
    assert os.listdir(tmp_path) == []


def test_replace_dir_swaps_whole_folders(tmp_path: Path) -> None:
    old, new = tmp_path / "android", tmp_path / ".staging"
    old.mkdir(), new.mkdir()
    (old / "stale.pte").write_bytes(b"1")
    (new / "fresh.pte").write_bytes(b"2")
    replace_dir(new, old)
    assert os.listdir(old) == ["fresh.pte"] and sorted(os.listdir(tmp_path)) == ["android"]


def test_hash_and_compressed_size(tmp_path: Path) -> None:
    path = tmp_path / "zeros.bin"
    path.write_bytes(bytes(100_000))
    assert sha256_file(path) == hashlib.sha256(bytes(100_000)).hexdigest()
    assert zip_compressed_size(path) < 1_000
    assert zip_compressed_size(path) == zip_compressed_size(path)
