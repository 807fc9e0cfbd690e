"""The strict reader under every typed report part: each field is checked against its type hint and its documented
range, and a wrong one is named by its JSON path (`artifacts[0].latency_ms.p50`).

Why one reader: the gate, the baseline comparison, the views and `bundle` read fields by attribute. A size that
is 10**400, a p50 of -5 ms, an accuracy of 5.0, a check with no verdict or an error object with integer fields
must stop at the door as a usage error naming the field, not reach arithmetic (OverflowError, ZeroDivisionError)
or XML (TypeError) as an internal error, and never read as a real measurement."""
from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping, Sequence
from enum import Enum
from functools import lru_cache
from typing import Union, get_args, get_origin

from edge_pipeline.errors import ConfigError
from edge_pipeline.json_types import JsonValue
from edge_pipeline.numbers import Range

JsonMap = Mapping[str, JsonValue]   # a free-form part of a report (converter metadata, host, config)
LARGEST_INT = 2 ** 63 - 1          # what a report's counts and sizes can hold (int64): beyond is not a figure
MAX_DEPTH = 64                      # nesting of a free-form part (metadata, config) a report may hold


class ReportFieldError(ConfigError):
    """A report field that is missing, of the wrong type or outside its range: the message starts with its path."""


def conform(hint: object, value: JsonValue, path: str, valid: Range | None = None) -> object:
    """`value` as the field typed `hint` holds it (nested parts read), or a ReportFieldError naming `path`."""
    origin, args = get_origin(hint), get_args(hint)
    if _is_json(hint) or (origin in (Mapping, dict) and _is_json(args[1])):
        return _json(value, path, None if _is_json(hint) else dict)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        arms = [a for a in args if a is not type(None)]
        problems = []
        for arm in arms:
            try:
                return conform(arm, value, path, valid)
            except ReportFieldError as exc:
                problems.append(str(exc))
        raise ReportFieldError(problems[0] if len(problems) == 1 else f"{path} must be {_names(arms)}, got "
                               f"{_show(value)}")
    if origin in (tuple, Sequence, list) or hint in (tuple, list):
        if not isinstance(value, list):
            raise ReportFieldError(f"{path} must be a list, got {_show(value)}")
        item = args[0] if args else JsonValue
        return tuple(conform(item, v, f"{path}[{i}]", valid) for i, v in enumerate(value))
    if origin in (Mapping, dict):
        if not isinstance(value, dict):
            raise ReportFieldError(f"{path} must be an object, got {_show(value)}")
        return {k: conform(args[1], v, f"{path}.{k}", valid) for k, v in value.items()}
    if not isinstance(hint, type):
        raise TypeError(f"the report reader has no rule for {hint!r}")
    if issubclass(hint, Enum):
        known = [m.value for m in hint]
        if value not in known:
            raise ReportFieldError(f"{path} must be one of {', '.join(map(str, known))}, got {_show(value)}")
        return hint(value)
    if hint is bool or hint is str:
        if not isinstance(value, hint):
            raise ReportFieldError(f"{path} must be a {'boolean' if hint is bool else 'string'}, got {_show(value)}")
        return value
    if hint is int or hint is float:
        return _number(hint, value, path, valid)
    reader = getattr(hint, "from_json", None)
    if reader is not None:
        if not isinstance(value, dict):
            raise ReportFieldError(f"{path} must be an object, got {_show(value)}")
        return reader(value, path)
    raise TypeError(f"the report reader has no rule for {hint!r}")


def read_fields(cls: type, data: Mapping[str, JsonValue], path: str, names: Sequence[str],
                required: Sequence[str], ranges: Mapping[str, Range]) -> dict[str, object]:
    """The typed fields of `cls` present in `data`, each conformed; a missing required one is named."""
    for name in required:
        if name not in data:
            raise ReportFieldError(f"{_join(path, name)} is missing")
    hints = field_hints(cls)
    return {name: conform(hints[name], data[name], _join(path, name), ranges.get(name))
            for name in names if name in data}


def in_range(path: str, values: Mapping[str, tuple[float | None, Range]]) -> None:
    """Fields whose range depends on another field (a metric's scale), checked once the part is read."""
    for name, (value, valid) in values.items():
        if value is not None and not valid.holds(value):
            raise ReportFieldError(f"{_join(path, name)} must be {valid}, got {_show(value)}")


@lru_cache(maxsize=None)
def field_hints(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def _number(kind: type, value: JsonValue, path: str, valid: Range | None) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and isinstance(value, float)):
        raise ReportFieldError(f"{path} must be {'an integer' if kind is int else 'a number'}, got {_show(value)}")
    if isinstance(value, int) and abs(value) > LARGEST_INT:
        raise ReportFieldError(f"{path} is {_show(value)}: larger than any real figure")
    if not math.isfinite(value):
        raise ReportFieldError(f"{path} is {value}: not a measurement")
    if valid is not None and not valid.holds(value):
        raise ReportFieldError(f"{path} must be {valid}, got {_show(value)}")
    return value


def _json(value: JsonValue, path: str, kind: type | None, depth: int = 0) -> JsonValue:
    """A free-form part: any JSON, but finite numbers only and bounded nesting (a NaN stays out of every file)."""
    if kind is not None and not isinstance(value, kind):
        raise ReportFieldError(f"{path} must be an object, got {_show(value)}")
    if depth > MAX_DEPTH:
        raise ReportFieldError(f"{path} is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise ReportFieldError(f"{path} is {value}: not a number JSON can hold")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > LARGEST_INT:
        raise ReportFieldError(f"{path} is {_show(value)}: larger than any real figure")
    if isinstance(value, dict):
        return {k: _json(v, f"{path}.{k}", None, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v, f"{path}[{i}]", None, depth + 1) for i, v in enumerate(value)]
    return value


def _is_json(hint: object) -> bool:
    """`JsonValue` however it was resolved (its self-reference makes each resolution a new object)."""
    return isinstance(hint, typing.ForwardRef) or {type(None), bool, int, float, str} <= set(get_args(hint))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _names(kinds: Sequence[object]) -> str:
    return " or ".join(getattr(k, "__name__", str(k)) for k in kinds)


def _show(value: object) -> str:
    if value is None:
        return "null"
    text = repr(value)
    if isinstance(value, int) and len(text) > 24:
        return f"an integer of {len(text)} digits"
    return f"{type(value).__name__} {text[:60]}"
