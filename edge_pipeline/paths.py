"""The one place where paths and names from users, reports and manifests are checked before use.

A report.json is user-editable input: an artifact `path` of `../../etc/hostname` (with a matching sha256) must
not be copied out of the build folder. Every relative path read from a report or manifest goes through
`inside()`, every name that becomes part of a path (target, zip name) through `plain_name()`, and every
output location given on the command line through `output_folder()` / `output_file()` before any work starts.
"""
from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from edge_pipeline.errors import ConfigError, InputError

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def plain_name(name: object, what: str) -> str:
    """A name that becomes one path component: letters, digits, `. _ -`, no leading dot, never `..`."""
    if not isinstance(name, str) or not SAFE_NAME.match(name) or ".." in name:
        raise ConfigError(f"{what} {name!r} must be a plain file name (letters, digits, . _ -), not a path")
    return name


def inside(root: Path, relative: object, what: str) -> Path:
    """`root/relative`, refused unless it stays inside `root` after resolving `..` and symlinks."""
    if not isinstance(relative, str) or not relative.strip() or "\\" in relative or "\0" in relative:
        raise InputError(f"{what} {relative!r} is not a relative path inside {root}")
    parts = PurePosixPath(relative)
    if parts.is_absolute() or ".." in parts.parts:
        raise InputError(f"{what} {relative!r} points outside {root}: refused")
    base = root.resolve()
    resolved = (base / parts).resolve()
    if resolved == base:
        raise InputError(f"{what} {relative!r} names {root} itself, not a file in it")
    if not resolved.is_relative_to(base):
        raise InputError(f"{what} {relative!r} resolves outside {root} (through a symlink): refused")
    return resolved


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
