"""One codec for every typed record that crosses a process or file boundary (worker jobs and results, cache
entries, report parts): dataclasses to JSON and back, driven by their type hints, so a record read back is the
record written, field for field.

Supported: dataclasses, str-valued enums, Path, tuples, lists, dicts with str keys, optionals and unions of
plain values, `JsonValue` (passed through), and classes with `to_json()` / `from_json()` (the report's parts)."""
from __future__ import annotations

import dataclasses
import types
import typing
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Protocol, TypeVar, Union, get_args, get_origin, get_type_hints, runtime_checkable

from edge_pipeline.types import JsonObject, JsonValue

T = TypeVar("T")


@runtime_checkable
class JsonCodable(Protocol):
    def to_json(self) -> JsonObject: ...


def encode(value: object) -> JsonValue:
    """A record (or any supported value) as JSON-ready data."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value.value if isinstance(value, Enum) else value
    if isinstance(value, Enum):
        return encode(value.value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, JsonCodable):
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(value.__dict__[f.name]) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    raise TypeError(f"cannot encode a {type(value).__name__} as JSON")


def decode(kind: type[T], data: JsonValue) -> T:
    """The record of type `kind` that `encode` turned into `data`."""
    return typing.cast(T, _decode(kind, data))


def _decode(kind: object, data: JsonValue) -> object:
    origin, args = get_origin(kind), get_args(kind)
    if kind in (typing.Any, object) or kind == JsonValue or kind == JsonObject:
        return data
    if origin in (Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        arms = [a for a in args if a is not type(None)]
        if len(arms) == 1:
            return _decode(arms[0], data)
        records = [a for a in args if isinstance(a, type) and (dataclasses.is_dataclass(a) or _is_codable(a))]
        return _decode(records[0], data) if len(records) == 1 and isinstance(data, dict) else data
    if origin is tuple:
        items = data if isinstance(data, list) else []
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in items)
        return tuple(_decode(a, v) for a, v in zip(args, items))
    if origin is list:
        return [_decode(args[0], v) for v in (data if isinstance(data, list) else [])]
    if origin is dict:
        return {k: _decode(args[1], v) for k, v in (data if isinstance(data, dict) else {}).items()}
    if isinstance(kind, type):
        if issubclass(kind, Enum):
            return kind(data)
        if kind is Path:
            return Path(str(data))
        if kind is float and isinstance(data, int) and not isinstance(data, bool):
            return float(data)
        if _is_codable(kind) and isinstance(data, dict):
            return kind.from_json(data)   # type: ignore[attr-defined]
        if dataclasses.is_dataclass(kind) and isinstance(data, dict):
            hints = _hints(kind)
            return kind(**{f.name: _decode(hints[f.name], data[f.name])
                           for f in dataclasses.fields(kind) if f.init and f.name in data})
    return data


def _is_codable(kind: type) -> bool:
    return callable(kind.__dict__.get("from_json")) or any("from_json" in c.__dict__ for c in kind.__mro__[1:])


@lru_cache(maxsize=None)
def _hints(kind: type) -> dict[str, object]:
    return get_type_hints(kind)
