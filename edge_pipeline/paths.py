"""The one place where paths and names from users, reports and manifests are checked before use.

A report.json is user-editable input: an artifact `path` of `../../etc/hostname` (with a matching sha256) must
not be copied out of the build folder. Every relative path read from a report or manifest (a TF.js model.json's
shards too) goes through `inside()`, every name that becomes part of a path (target, zip name) through
`plain_name()`, and every output location given on the command line through `output_folder()` / `output_file()`
before any work starts.
"""
from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from edge_pipeline.errors import ConfigError, InputError

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
NAME_MAX = 255    # bytes in one path component (Linux, macOS): a longer name fails only when the file is written


def plain_name(name: object, what: str, suffix: str = "") -> str:
    """A name that becomes one path component (with `suffix`, e.g. `.zip`, added): letters, digits, `. _ -`, no
    leading dot, never `..`, and short enough to be written, so it is refused before anything is replaced."""
    if not isinstance(name, str) or not SAFE_NAME.match(name) or ".." in name:
        raise ConfigError(f"{what} {name!r} must be a plain file name (letters, digits, . _ -), not a path")
    if len((name + suffix).encode()) > NAME_MAX:
        with_suffix = f" ({len(name + suffix)} with {suffix})" if suffix else ""
        raise ConfigError(f"{what} {name[:24]!r}... is {len(name)} characters long{with_suffix}; a file name holds "
                          f"at most {NAME_MAX}")
    return name


def inside(root: Path, relative: object, what: str) -> Path:
    """`root/relative`, refused unless it is a relative path below `root` with no `..` and no symlink on its way
    (one pointing inside included: what is read from a folder is what the folder holds). It need not exist yet."""
    if not isinstance(relative, str) or not relative.strip() or "\\" in relative or "\0" in relative:
        raise InputError(f"{what} {relative!r} is not a relative path inside {root}")
    parts = PurePosixPath(relative)
    if parts.is_absolute() or ".." in parts.parts:
        raise InputError(f"{what} {relative!r} points outside {root}: refused")
    if not parts.parts:
        raise InputError(f"{what} {relative!r} names {root} itself, not a file in it")
    path = root.resolve()
    for part in parts.parts:
        path = path / part
        if path.is_symlink():
            raise InputError(f"{what} {relative!r} goes through a symlink ({path}): refused")
    return path


def output_folder(path: Path, what: str = "--out") -> Path:
    """Refuses, before any work, an output folder that is a file, sits under a file, or cannot be written."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} is a file, not a folder")
    _writable_ancestor(path, what)
    return path


def output_file(path: Path, what: str) -> Path:
    """Refuses, before any work, an output file that is a folder or whose folder cannot be created or written."""
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder, not a file")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{what} {path} is not writable")
    _writable_ancestor(path.parent, what)
    return path


def _writable_ancestor(path: Path, what: str) -> None:
    """The nearest existing ancestor must be a folder we may create entries in."""
    probe = path.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{what} {path}: {probe} is a file, so no folder can be created there")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path}: {probe} is not writable")
