"""Structural checks of a report or baseline read from disk, before anything trusts its fields.

`edgepipe gate` and `baseline update` read files a person (or a broken job) may have edited or truncated. A
missing `artifacts` key, a size that is a string or a target that is a path must be a one-line usage error
(exit 2), not a KeyError deep in the comparison, and never a silent pass.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

from edge_pipeline.errors import ConfigError
from edge_pipeline.paths import plain_name
from edge_pipeline.types import JsonObject, JsonValue

NUMBER = (int, float)
OPTIONAL_NUMBER = (int, float, type(None))
OPTIONAL_STR = (str, type(None))
REPORT_STATUSES = ("passed", "gate_failed", "stage_failed")
ARTIFACT_FIELDS: dict[str, tuple[type, ...]] = {
    "format": (str,), "precision": (str,), "status": (str,), "path": OPTIONAL_STR, "sha256": OPTIONAL_STR,
    "size_bytes": (int, type(None)), "size_compressed_bytes": (int, type(None)), "accuracy": OPTIONAL_NUMBER,
    "accuracy_drop": OPTIONAL_NUMBER, "agreement": OPTIONAL_NUMBER, "latency_ms": (dict, type(None)),
    "measured_on": OPTIONAL_STR, "error": (dict, type(None)), "export": (dict, type(None)),
    "runner": OPTIONAL_STR}
REQUIRED_ARTIFACT_FIELDS = ("format", "precision", "status")
BASELINE_FIELDS: dict[str, tuple[type, ...]] = {
    "size_bytes": (int,), "size_compressed_bytes": (int, type(None)), "sha256": OPTIONAL_STR,
    "accuracy": OPTIONAL_NUMBER, "agreement": OPTIONAL_NUMBER, "latency_ms": (dict,), "measured_on": OPTIONAL_STR}
LATENCY_FIELDS = ("p50", "p90", "noise")


def check_report(data: JsonValue, where: str, baseline_kind: str) -> JsonObject:
    """Returns `data` if it has the shape the gate reads; otherwise a ConfigError naming the first bad field.
    Only then is it read into the typed report (or baseline): see baseline.load_report."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} is not an edgepipe report or baseline (a JSON {type(data).__name__})")
    plain_name(data.get("target"), f"{where}: 'target'")
    if data.get("kind") == baseline_kind:
        _check_baseline(data, where)
    else:
        _check_build_report(data, where)
    return data


def _check_build_report(data: JsonObject, where: str) -> None:
    if data.get("status") not in REPORT_STATUSES or not isinstance(data.get("passed"), bool):
        raise ConfigError(f"{where}: 'status' must be one of {', '.join(REPORT_STATUSES)} and 'passed' a boolean "
                          f"(got {data.get('status')!r}, {data.get('passed')!r}): not a complete build report")
    artifacts = data.get("artifacts")
    if not isinstance(artifacts, list):
        raise ConfigError(f"{where}: 'artifacts' must be a list, got {_kind(artifacts)}")
    for i, entry in enumerate(artifacts):
        path = f"{where}: artifacts[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{path} must be an object, got {_kind(entry)}")
        for key in REQUIRED_ARTIFACT_FIELDS:
            if key not in entry:
                raise ConfigError(f"{path} has no '{key}'")
        _fields(entry, ARTIFACT_FIELDS, path)
    budgets = data.get("budgets", {})
    if not isinstance(budgets, dict):
        raise ConfigError(f"{where}: 'budgets' must be an object, got {_kind(budgets)}")
    from edge_pipeline.report.gating import validate_budget

    for name, limit in budgets.items():
        validate_budget(name, limit, f"{where}: budgets.{name}")


def _check_baseline(data: JsonObject, where: str) -> None:
    artifacts = data.get("artifacts")
    if not isinstance(artifacts, dict) or not artifacts:
        raise ConfigError(f"{where}: a baseline needs a non-empty 'artifacts' object, got {_kind(artifacts)}")
    for label, entry in artifacts.items():
        path = f"{where}: artifacts.{label}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{path} must be an object, got {_kind(entry)}")
        for key in ("size_bytes", "latency_ms"):
            if key not in entry:
                raise ConfigError(f"{path} has no '{key}'")
        _fields(entry, BASELINE_FIELDS, path)


def _fields(entry: JsonObject, types: Mapping[str, tuple[type, ...]], path: str) -> None:
    for key, allowed in types.items():
        value = entry.get(key)
        if key in entry and (not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)):
            raise ConfigError(f"{path}.{key} has the wrong type: {_kind(value)} {value!r:.60}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{path}.{key} is {value}: not a measurement")
    if isinstance(entry.get("size_bytes"), int) and entry["size_bytes"] < 0:
        raise ConfigError(f"{path}.size_bytes is negative")
    latency = entry.get("latency_ms")
    for key in LATENCY_FIELDS:
        value = latency.get(key) if isinstance(latency, dict) else None
        if value is not None and (not isinstance(value, NUMBER) or isinstance(value, bool)
                                  or not math.isfinite(value)):
            raise ConfigError(f"{path}.latency_ms.{key} must be a finite number, got {value!r:.60}")


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__
