"""Content-addressed stage cache: key = source weights hash + stage config + tool versions."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from edge_pipeline.fsutil import sha256_json, write_json_atomic


def cache_root() -> Path:
    override = os.environ.get("EDGEPIPE_CACHE_DIR")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("edgepipe"))


SCHEMA = 7   # bump when a stage's result layout changes, so old cache entries are not reused


def stage_dir(stage: str, key_material: dict[str, Any]) -> tuple[str, Path]:
    key = sha256_json({**key_material, "cache_schema": SCHEMA})
    return key, cache_root() / "stages" / stage / key[:32]


def lookup(directory: Path) -> dict[str, Any] | None:
    """A stage's result, present only when the stage finished (result.json is written last)."""
    done = directory / "done.json"
    if not done.is_file():
        return None
    try:
        return json.loads(done.read_text())
    except json.JSONDecodeError:
        return None


def commit(directory: Path, result: dict[str, Any]) -> None:
    write_json_atomic(directory / "done.json", result)


def discard(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
