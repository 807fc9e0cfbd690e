"""Content-addressed stage cache: key = source weights hash + stage config + tool versions. Each entry is a
typed record, written and read through the one codec.

Beside the stages, `work/<build>/` holds a build's scratch files and `logs/` the logs errors name. A build removes
its work folder when it ends; one killed first (SIGKILL, a power cut) leaves it, so each folder records its owner
(pid, the process's start time, boot and host) and the next run that uses the cache removes those whose owner is
gone. Several builds may share a cache: a live build's folder is never removed."""
from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from edge_pipeline.codec import decode, encode
from edge_pipeline.fsutil import sha256_json, write_json_atomic
from edge_pipeline.types import JsonObject

R = TypeVar("R")


def cache_root() -> Path:
    """EDGEPIPE_CACHE_DIR, else the user's cache folder (under HOME), created if missing. One that cannot be
    created or written (HOME unset, read-only or missing) is a one-line error naming the folder and the fix,
    instead of a failure naming HOME deep inside a stage."""
    from edge_pipeline.errors import EnvironmentProblem

    override = os.environ.get("EDGEPIPE_CACHE_DIR")
    if override:
        root, source = Path(override), "EDGEPIPE_CACHE_DIR"
    else:
        from platformdirs import user_cache_dir

        var = "XDG_CACHE_HOME" if os.environ.get("XDG_CACHE_HOME") else "HOME"
        root, source = Path(user_cache_dir("edgepipe")), f"{var}={os.environ.get(var, '(unset)')}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        usable = os.access(root, os.W_OK | os.X_OK)
        reason = "not writable"
    except OSError as exc:
        usable, reason = False, exc.strerror or str(exc)
    if not usable:
        raise EnvironmentProblem(f"cache directory {root} (from {source}) cannot be used: {reason}; set "
                                 f"EDGEPIPE_CACHE_DIR to a writable folder")
    return root


SCHEMA = 11  # bump when a stage's record changes, so old cache entries are not reused


def stage_dir(stage: str, key_material: JsonObject) -> tuple[str, Path]:
    """The entry's key and folder; the first call of a process also removes the work folders of dead builds
    (every build asks for stage folders, even one whose every stage is cached)."""
    key = sha256_json({**key_material, "cache_schema": SCHEMA})
    root = cache_root()
    _sweep_once(root / WORK)
    return key, root / "stages" / stage / key[:32]


def lookup(directory: Path, record: type[R]) -> R | None:
    """A stage's record, present only when the stage finished (done.json is written last); an entry that does
    not decode (an older layout, a damaged file) is a miss."""
    done = directory / "done.json"
    if not done.is_file():
        return None
    try:
        return decode(record, json.loads(done.read_text()))
    except (ValueError, TypeError, KeyError):
        return None


def commit(directory: Path, record: object) -> None:
    write_json_atomic(directory / "done.json", encode(record))


def discard(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


WORK = "work"              # work/<build>/: a build's scratch folder, removed when the build ends
OWNER = "owner.json"       # in each: the process that made it
STALE_AFTER_S = 6 * 3600   # a work folder whose owner cannot be told (no marker, another host) is kept this long
_swept: set[Path] = set()
_sweep_lock = threading.Lock()


def make_workdir(path: Path) -> None:
    """Creates a job's folder; under work/, its build's folder first gets its owner marker (before anything else
    is written there), so another run sharing the cache sees that a live build holds it."""
    work = cache_root() / WORK
    if work in path.parents:
        folder = work / path.relative_to(work).parts[0]
        _sweep_once(work)
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / OWNER).is_file():
            write_json_atomic(folder / OWNER, {"pid": os.getpid(), "start": _started(os.getpid()), **_here()})
    path.mkdir(parents=True, exist_ok=True)


def remove_stale_work(work: Path | None = None) -> list[Path]:
    """Removes the work folders of builds that ended without cleaning up: the owner process is gone (or its pid
    now belongs to another process, told apart by start time), or, when the owner cannot be told (no marker,
    another host or container), the folder is older than STALE_AFTER_S. Returns what it removed."""
    work = work or cache_root() / WORK
    try:
        with os.scandir(work) as found:
            entries = [Path(e.path) for e in found if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    stale = [folder for folder in entries if _stale(folder)]
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return stale


def keep_log(log: Path) -> Path | None:
    """A worker log an error can name: the log itself, or a copy under logs/ when it lies in a work folder (removed
    when its build ends). None when it is empty or cannot be kept (a full disk): never a log that is not there."""
    try:
        if not log.stat().st_size:
            return None
    except OSError:
        return None
    root = cache_root()
    if root / WORK not in log.parents:
        return log
    kept = root / "logs" / f"worker-{log.parent.name}-{os.getpid()}-{time.time_ns()}.log"
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, kept)
    except OSError:
        kept.unlink(missing_ok=True)
        return None
    return kept


def _sweep_once(work: Path) -> None:
    with _sweep_lock:
        if work in _swept:
            return
        _swept.add(work)
    remove_stale_work(work)


def _stale(folder: Path) -> bool:
    try:
        owner = json.loads((folder / OWNER).read_text())
    except (OSError, ValueError):
        owner = None
    here = _here()
    if isinstance(owner, dict) and all(owner.get(k) == here[k] for k in ("host", "pidns")):
        if owner.get("boot") != here["boot"]:
            return True                      # made before the last reboot: its process cannot be running
        pid = owner.get("pid")
        return not (isinstance(pid, int) and pid > 0 and _alive(pid, owner.get("start")))
    try:
        return time.time() - folder.stat().st_mtime > STALE_AFTER_S
    except OSError:
        return False


def _alive(pid: int, start: object) -> bool:
    """Whether `pid` runs and is the process that wrote the marker (a reused pid has another start time)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass                                 # another user's process: it exists
    stat = _proc_stat(pid)
    if stat is None:
        return True                          # no /proc: the pid answers, so take it as the owner
    state, started = stat
    return state not in ("Z", "X") and (start is None or started == start)


def _started(pid: int) -> int | None:
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """The state and start time (clock ticks after boot, /proc/<pid>/stat field 22) of a process, where /proc
    has them."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


@lru_cache(maxsize=1)
def _here() -> dict[str, str | None]:
    """Where a pid means something: the host, its boot and the pid namespace (a container has its own)."""
    return {"host": socket.gethostname(), "boot": _read("/proc/sys/kernel/random/boot_id"),
            "pidns": _read("/proc/self/ns/pid", link=True)}


def _read(path: str, link: bool = False) -> str | None:
    try:
        return os.readlink(path) if link else Path(path).read_text().strip()
    except OSError:
        return None
