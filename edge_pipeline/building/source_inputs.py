"""What the source stage read, so that an unchanged rebuild can skip it.

The source stage is what fingerprints the weights and data, so it used to run on every build: a worker that
imports the framework and loads the model only to learn that nothing changed (4 s of a 4.5 s rebuild). Like a
build system's depfile, the worker now records every file it read (Python `open` calls seen by an audit hook,
the modules it imported from outside the installed packages, the model and weights paths of the spec, and the
folders it listed, except those the import system scans) with size and modification time. When every one of them
is unchanged, and so are the installed packages, the spec and the interpreter, the build reuses the stage's cached
result; `--no-cache` always runs it.
"""
from __future__ import annotations

import json
import os
import sys
import sysconfig
from dataclasses import asdict
from pathlib import Path

from edge_pipeline.building.cache import SCHEMA
from edge_pipeline.codec import decode, encode
from edge_pipeline.fsutil import sha256_json, write_json_atomic
from edge_pipeline.host import CALIBRATION_ENV, EVALUATION_ENV
from edge_pipeline.records import Stamp
from edge_pipeline.types import JsonObject
from edge_pipeline.version import __version__

# Change what a spec resolves to: the sample caps change how much of the user's data the stage draws.
KEY_ENV = ("PYTHONPATH", "KERAS_BACKEND", "EDGEPIPE_CACHE_DIR", CALIBRATION_ENV, EVALUATION_ENV)
SKIPPED_ROOTS = ("/proc/", "/sys/", "/dev/")


class ReadRecorder:
    """Collects the paths a worker reads. Audit hooks cannot be removed: install it in a worker process only."""

    def __init__(self, own_output: Path):
        self._paths: set[str] = set()
        self._skip = (str(own_output.resolve()) + os.sep, *_installed_roots(), *SKIPPED_ROOTS)
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[object, ...]) -> None:
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)) and _reads(args[1], args[2]):
            self._paths.add(os.path.abspath(os.fsdecode(args[0])))
        elif event in ("os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes, os.PathLike)):
            self._paths.add(os.path.abspath(os.fsdecode(args[0])))

    def stamps(self, named: list[str]) -> tuple[Stamp, ...]:
        """Stamps of everything read, the user's imported modules and the spec's named files (a SavedModel is
        a folder: all of its files)."""
        import_dirs = {os.path.abspath(p or ".") for p in sys.path}    # listed by the import system, not the user
        paths = (set(self._paths) - import_dirs) | _user_modules() | _expand(named)
        stamps = (Stamp.of(p) for p in sorted(paths) if not os.path.join(p, "").startswith(self._skip))
        return tuple(s for s in stamps if s is not None)


def record_path(spec: JsonObject, cache_root: Path) -> Path:
    """Where the last run of this spec, from this folder and interpreter, recorded what it read."""
    key = sha256_json({"spec": spec, "cwd": os.getcwd(), "python": sys.executable, "edgepipe": __version__,
                       "cache_schema": SCHEMA,      # a stage record's meaning changed: its source is not reused
                       "env": {k: os.environ.get(k) for k in KEY_ENV}, "packages": _package_stamps()})
    return cache_root / "source-inputs" / f"{key[:32]}.json"


def unchanged_source(record: Path) -> Path | None:
    """The cached source folder the recorded run produced, when nothing it read has changed since."""
    try:
        saved = json.loads(record.read_text())
        stamps = decode(tuple[Stamp, ...], saved["read"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if any(Stamp.of(s.path) != s for s in stamps):
        return None
    return Path(saved["source_dir"])


def save_record(record: Path, read: tuple[Stamp, ...], source_dir: Path) -> None:
    write_json_atomic(record, {"read": encode(read), "source_dir": str(source_dir)})


def _reads(mode: object, flags: object) -> bool:
    if isinstance(mode, str):
        return not any(c in mode for c in "wax+")
    return isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR) == 0


def _installed_roots() -> tuple[str, ...]:
    """The standard library and installed packages: covered by `_package_stamps`, not stamped file by file."""
    roots = {sysconfig.get_path(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= {p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}
    return tuple(os.path.join(os.path.abspath(r), "") for r in roots if r)


def _package_stamps() -> list[JsonObject]:
    """Installing, upgrading or removing a package changes its site-packages folder."""
    folders = {p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and os.path.isdir(p)}
    return [asdict(s) for s in map(Stamp.of, sorted(folders)) if s is not None]


def _user_modules() -> set[str]:
    files = (m.__dict__.get("__file__") for m in list(sys.modules.values()))
    return {os.path.abspath(f) for f in files if isinstance(f, str)}


def _expand(named: list[str]) -> set[str]:
    out: set[str] = set()
    for name in named:
        path = Path(name)
        if path.is_dir():
            out |= {str(p.resolve()) for p in path.rglob("*") if p.is_file()} | {str(path.resolve())}
        elif path.exists():
            out.add(str(path.resolve()))
    return out
