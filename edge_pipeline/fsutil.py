"""Atomic writes, hashing and compressed sizes: a failed build never leaves a file that looks valid.

Temporary files and folders are created private (mkstemp: 0600, mkdtemp: 0700) and get the modes the user's
umask gives ordinary files just before they are renamed into place, so a CI uploader or web server can read them.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from edge_pipeline.errors import EnvironmentProblem


class DiskFull(EnvironmentProblem):
    """Raised for ENOSPC so the message says what happened instead of a bare OSError (or shutil.Error list)."""


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC / EDQUOT, also when buried in the list of errors that shutil.copytree raises."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):
        return any("No space left" in str(item) or "quota exceeded" in str(item).lower() for item in exc.args[0])
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def current_umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask is set-and-return)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: Path) -> None:
    """Gives a private temporary file or folder tree the modes a plain `open()` / `mkdir` would have given."""
    mask = current_umask()
    for entry in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if entry.is_symlink():
            continue
        executable = entry.is_dir() or bool(entry.stat().st_mode & 0o100)
        os.chmod(entry, (0o777 if executable else 0o666) & ~mask)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_json(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def files_of(path: Path) -> list[Path]:
    """The files an artifact consists of: itself, or every file of a folder artifact (sorted)."""
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def sha256_artifact(path: Path) -> str:
    """A file's sha256, or for a folder the sha256 over each file's relative path and sha256."""
    if not path.is_dir():
        return sha256_file(path)
    lines = [f"{p.relative_to(path).as_posix()}:{sha256_file(p)}" for p in files_of(path)]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def size_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in files_of(path))


def zip_compressed_size(path: Path) -> int:
    """Size after deflate, as an app store or bundle would ship it (fixed timestamps: reproducible)."""
    with tempfile.TemporaryFile() as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            for file in files_of(path):
                name = file.relative_to(path).as_posix() if path.is_dir() else file.name
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, file.read_bytes())
        return tmp.tell()


@contextlib.contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yields a temporary sibling path; renames it onto `dest` only if the block succeeds."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    except OSError as exc:     # name the file the caller asked for, not the temporary one
        raise OSError(exc.errno, exc.strerror, str(dest)) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        apply_umask(tmp)
        os.replace(tmp, dest)
    except OSError as exc:
        _discard(tmp)
        if is_disk_full(exc):
            raise DiskFull(f"disk full while writing {dest}: nothing was written") from exc
        raise
    except BaseException:
        _discard(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(dest: Path) -> Iterator[Path]:
    """Like atomic_path for folder artifacts (e.g. TF.js model.json + shards)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        yield tmp
        apply_umask(tmp)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(exc):
            raise DiskFull(f"disk full while writing {dest}: nothing was written") from exc
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text_atomic(dest: Path, text: str) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(text)


def write_json_atomic(dest: Path, value: object) -> None:
    write_text_atomic(dest, json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")


def copy_atomic(src: Path, dest: Path) -> None:
    if src.is_dir():
        with atomic_dir(dest) as tmp:
            shutil.copytree(src, tmp, dirs_exist_ok=True)
        return
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)


def replace_dir(staging: Path, dest: Path) -> None:
    """Swaps a fully written staging directory into place, so readers never see a mix."""
    trash = dest.with_name(f".{dest.name}.old")
    if trash.exists():
        shutil.rmtree(trash)
    if dest.exists():
        os.replace(dest, trash)
    try:
        os.replace(staging, dest)
    except BaseException:            # (Ctrl-C between the two renames included): the old folder goes back
        if trash.exists() and not dest.exists():
            os.replace(trash, dest)
        raise
    shutil.rmtree(trash, ignore_errors=True)


def remove_stale_siblings(dest: Path, pattern: str) -> None:
    """Removes `pattern` siblings of dest left by a process that no longer runs (killed, power cut), so a
    crashed build does not keep its partial artifacts nor make the next one run out of space earlier."""
    if not dest.parent.is_dir():
        return
    for stale in dest.parent.glob(pattern):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else _discard(stale)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _discard(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
