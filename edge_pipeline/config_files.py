"""Finds and reads the config file: `edgepipe.toml`, or `[tool.edgepipe]` in `pyproject.toml`. A file is read whole
as UTF-8 TOML; anything it cannot be (unreadable, not UTF-8, invalid, nested deeper than any config needs) is a
one-line ConfigError naming the file, and `check_keys` refuses a table's unknown keys and wrongly typed values,
quoting their TOML path. Split from config.py, which checks what each setting means."""
from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from edge_pipeline.errors import ConfigError
from edge_pipeline.json_types import JsonObject, JsonValue

TOOL_TABLE = "tool.edgepipe"
KeyTypes = Mapping[str, type | tuple[type, ...]]   # allowed keys of a TOML table -> the types each may have
MAX_DEPTH = 32    # a config is at most ~5 levels deep; a 3,000-deep array would exhaust the parser's recursion


@dataclass(frozen=True)
class FoundConfig:
    """The edgepipe table of a file, where in the file it is (`prefix`: "" or "tool.edgepipe"), and what a reader
    should know about how it was chosen (both files present: which one is used)."""

    table: JsonValue
    prefix: str
    file: Path
    warnings: tuple[str, ...] = ()


def find_config(start: Path) -> FoundConfig | None:
    """The first of `edgepipe.toml` and `[tool.edgepipe]` in `pyproject.toml` in `start`; when both exist the first
    wins, as always, and the result says so in a warning instead of ignoring the other without a word."""
    own, project = start / "edgepipe.toml", start / "pyproject.toml"
    if own.is_file():
        table = read_toml(own)
        shadowed = project.is_file() and _readable_tool_table(project)
        note = (f"both {own} and [{TOOL_TABLE}] in {project} configure edgepipe: using {own} "
                f"([{TOOL_TABLE}] is ignored)",) if shadowed else ()
        return FoundConfig(table, "", own, note)
    tool = _tool_table(project) if project.is_file() else None
    return FoundConfig(tool, TOOL_TABLE, project) if tool is not None else None


def explicit_config(path: Path) -> FoundConfig:
    """A file named with --config: a pyproject.toml is read for its [tool.edgepipe] table, any other file whole."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.name == "pyproject.toml":
        tool = _tool_table(path)
        if tool is None:
            raise ConfigError(f"{path} has no [{TOOL_TABLE}] table")
        return FoundConfig(tool, TOOL_TABLE, path)
    return FoundConfig(read_toml(path), "", path)


def _tool_table(project: Path) -> JsonValue | None:
    """`[tool.edgepipe]` of a pyproject.toml (None: the file has none)."""
    tool = read_toml(project).get("tool", {})
    if not isinstance(tool, dict):
        raise ConfigError(f"{project}: 'tool' must be a table, got {type(tool).__name__} {tool!r:.40}")
    return tool.get("edgepipe")


def _readable_tool_table(project: Path) -> bool:
    """Whether a pyproject.toml beside edgepipe.toml holds an edgepipe table (a broken one is not the config in use,
    so it is only looked at, never an error)."""
    try:
        return _tool_table(project) is not None
    except ConfigError:
        return False


def read_toml(path: Path) -> JsonObject:
    """A TOML file as a table; unreadable, non-UTF-8, invalid or absurdly nested files are config errors naming
    the file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                          f"TOML files must be UTF-8") from exc
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply (arrays or tables more than {MAX_DEPTH} levels "
                          f"deep)") from None
    if _depth(table) > MAX_DEPTH:    # parsed, but deep enough to break whatever walks it next (repr, JSON)
        raise ConfigError(f"{path}: invalid TOML: nested too deeply (arrays or tables more than {MAX_DEPTH} levels "
                          f"deep)")
    return table


def _depth(value: JsonValue) -> int:
    """How deeply arrays and tables nest in `value`, walked without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack += [(v, level + 1) for v in item.values()]
        elif isinstance(item, list):
            stack += [(v, level + 1) for v in item]
    return deepest


def check_keys(table: JsonObject, allowed: KeyTypes, path: str) -> None:
    """Every key of `table` is one of `allowed`, of its type (a bool is not a number); else the closest valid key."""
    for key, value in table.items():
        where = f"{path}.{key}" if path else key
        if key not in allowed:
            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"unknown key '{where}'. Valid keys: {', '.join(sorted(allowed))}.{hint}")
        expected = allowed[key]
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
            raise ConfigError(f"'{where}' must be {names}, got {type(value).__name__} {value!r}")
