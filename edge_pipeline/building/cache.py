"""Content-addressed stage cache: key = source weights hash + stage config + tool versions. Each entry is a
typed record, written and read through the one codec."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TypeVar

from edge_pipeline.codec import decode, encode
from edge_pipeline.fsutil import sha256_json, write_json_atomic
from edge_pipeline.types import JsonObject

R = TypeVar("R")


def cache_root() -> Path:
    override = os.environ.get("EDGEPIPE_CACHE_DIR")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("edgepipe"))


SCHEMA = 9   # bump when a stage's record changes, so old cache entries are not reused


def stage_dir(stage: str, key_material: JsonObject) -> tuple[str, Path]:
    key = sha256_json({**key_material, "cache_schema": SCHEMA})
    return key, cache_root() / "stages" / stage / key[:32]


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
