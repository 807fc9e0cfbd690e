"""Atomic writes, confined reads, hashing and compressed sizes: a failed build never leaves a file that looks
valid, and a symlink, FIFO or device in an artifact folder is refused by name, never followed, opened or copied.

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
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from edge_pipeline.errors import EnvironmentProblem, InputError


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
    """The files an artifact consists of: itself, or every file of a folder artifact (sorted, regular only)."""
    return _walk(path, "artifact folder")[1] if path.is_dir() else [path]


KINDS = ((stat.S_ISLNK, "a symlink"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
         (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _kind(mode: int) -> str:
    return next((name for test, name in KINDS if test(mode)), "not a regular file")


def regular_file(path: Path, what: str) -> Path:
    """`path`, refused unless it is a regular file itself: checked with lstat before anything opens it, so a FIFO
    cannot hang the read and a symlink cannot lead out of its folder."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise InputError(f"{what} {path} is missing") from None
    if not stat.S_ISREG(mode):
        raise InputError(f"{what} {path} is {_kind(mode)}, not a regular file: refused")
    return path


def _walk(folder: Path, what: str) -> tuple[list[Path], list[Path]]:
    """(sub-folders, regular files) under `folder`, sorted; any other entry (a symlink in or out, a FIFO, a
    device) is refused by its relative path before a byte is read."""
    folders: list[Path] = []
    files: list[Path] = []
    pending = [folder]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                mode, path = entry.stat(follow_symlinks=False).st_mode, Path(entry.path)
                if stat.S_ISDIR(mode):
                    folders.append(path)
                    pending.append(path)
                elif stat.S_ISREG(mode):
                    files.append(path)
                else:
                    raise InputError(f"{what} {folder} holds {path.relative_to(folder).as_posix()}, {_kind(mode)}: "
                                     f"only regular files are read from it")
    return sorted(folders), sorted(files)


def copy_regular_tree(src: Path, dest: Path, what: str) -> None:
    """Copies a folder's contents (never a symlink's target), refused whole before anything is written if it holds
    anything but folders and regular files; modes follow the umask (owner-executable files stay executable)."""
    folders, files = _walk(src, what)
    mask = current_umask()
    for folder in [src, *folders]:
        (dest / folder.relative_to(src)).mkdir(parents=True, exist_ok=True)
    for file in files:
        target = dest / file.relative_to(src)
        shutil.copyfile(file, target)
        os.chmod(target, (0o777 if file.stat().st_mode & 0o100 else 0o666) & ~mask)


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


def _prefix(dest: Path) -> str:
    """A temporary sibling's name prefix that still fits NAME_MAX (255 bytes) when `dest`'s own name does."""
    return f".{dest.name.encode()[:200].decode(errors='ignore')}."


@contextlib.contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yields a temporary sibling path; renames it onto `dest` only if the block succeeds."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=_prefix(dest), suffix=".partial", dir=dest.parent)
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
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(dest), suffix=".partial", dir=dest.parent))
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
    write_text_atomic(dest, json.dumps(value, indent=2, sort_keys=False, default=str, allow_nan=False) + "\n")


def copy_atomic(src: Path, dest: Path) -> None:
    if src.is_dir():
        with atomic_dir(dest) as tmp:
            copy_regular_tree(src, tmp, "artifact folder")
        return
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)


def replace_dir(staging: Path, dest: Path) -> None:
    """Swaps a fully written staging directory into place, so readers never see a mix. A destination that is a
    mount point (docker's `-v out:/…/android`) cannot be renamed (EBUSY): its contents are replaced instead."""
    trash = dest.with_name(f".{dest.name}.old")
    if trash.exists():
        shutil.rmtree(trash)
    if dest.exists():
        try:
            os.replace(dest, trash)
        except OSError as exc:
            if exc.errno not in (errno.EBUSY, errno.EXDEV):
                raise
            return _replace_contents(staging, dest)
    try:
        os.replace(staging, dest)
    except BaseException:            # (Ctrl-C between the two renames included): the old folder goes back
        if trash.exists() and not dest.exists():
            os.replace(trash, dest)
        raise
    shutil.rmtree(trash, ignore_errors=True)


def _replace_contents(staging: Path, dest: Path) -> None:
    """`replace_dir` for a folder that cannot be renamed: the new entries go into a hidden folder inside it first
    (renamed, or copied from another file system), then each old entry is renamed aside and each new one in, so
    every file there is whole at every moment; a failure puts the old entries back."""
    remove_stale_siblings(dest / ".new", ".edgepipe-*-*")       # left inside it by a killed process
    new, old = dest / f".edgepipe-new-{os.getpid()}", dest / f".edgepipe-old-{os.getpid()}"
    moved: list[str] = []
    try:
        shutil.move(staging, new)             # a rename, or a copy from another file system
        old.mkdir()
        for name in [n for n in os.listdir(dest) if not n.startswith(".edgepipe-")]:
            os.replace(dest / name, old / name)
        for name in os.listdir(new):
            os.replace(new / name, dest / name)
            moved.append(name)
    except BaseException:
        for path in (dest / name for name in moved):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        for name in os.listdir(old) if old.is_dir() else ():
            os.replace(old / name, dest / name)
        raise
    finally:
        shutil.rmtree(new, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


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

