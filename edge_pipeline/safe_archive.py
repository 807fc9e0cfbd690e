"""Refuses zip archives (a `.keras` file is one) whose declared contents would not fit, before anything unpacks them.

A 1 MB zip bomb named model.keras drove the Keras loader to 2.8 GB before it failed. The central directory
declares every member's uncompressed size, and Python's zipfile (which Keras reads with) never yields more than
that size, so summing the declared sizes bounds what loading can unpack. Member names are checked too: an
archive that names files outside its own root is not a model file.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path, PurePosixPath

from edge_pipeline.errors import InputError

MAX_MEMBERS = 10_000
FALLBACK_LIMIT = 4 << 30        # where physical memory cannot be read


def default_limit() -> int:
    """Half of physical memory: a model file that unpacks to more cannot be loaded here anyway."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return FALLBACK_LIMIT


def check_keras_archive(path: Path, max_total_bytes: int | None = None) -> None:
    """Raises InputError unless `path` is a zip whose members are plain relative names and whose declared
    uncompressed sizes add up to at most `max_total_bytes` (default: `default_limit()`)."""
    limit = default_limit() if max_total_bytes is None else max_total_bytes
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path} is not a loadable .keras file (not a readable zip archive: {exc})") from exc
    if len(members) > MAX_MEMBERS:
        raise InputError(f"{path} holds {len(members):,} files (more than {MAX_MEMBERS:,}): refused before unpacking")
    total = 0
    for member in members:
        name = PurePosixPath(member.filename)
        if name.is_absolute() or ".." in name.parts or "\\" in member.filename:
            raise InputError(f"{path} names a file outside the archive ({member.filename!r}): refused")
        total += member.file_size
        if total > limit:
            raise InputError(f"{path} would unpack to more than {_mb(limit)} (declared sizes; the file is "
                             f"{_mb(path.stat().st_size)}): refused before unpacking, as a zip bomb would be")


def _mb(size: int) -> str:
    return f"{size / (1 << 20):,.1f} MB"
