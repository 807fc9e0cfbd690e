"""JSON as it is written to and read from disk: the open, free-form parts (converter metadata, provenance, a
user's config table) that the core passes through without looking inside. The ground floor: imports nothing."""
from __future__ import annotations

from typing import Union

JsonValue = Union[None, bool, int, float, str, list["JsonValue"], dict[str, "JsonValue"]]
JsonObject = dict[str, JsonValue]
