"""Finds plugins through entry points, the same way a third-party `edgepipe-foo` package registers.

Listing reads package metadata only; a plugin's module is imported when it is first used.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .errors import MissingDependency, UnknownPlugin

KINDS = {"exporter": "edgepipe.exporters", "transform": "edgepipe.transforms",
         "runner": "edgepipe.runners", "target": "edgepipe.targets"}


@dataclass(frozen=True)
class PluginInfo:
    kind: str
    name: str
    value: str
    distribution: str | None


@lru_cache(maxsize=None)
def _entry_points(kind: str) -> dict[str, EntryPoint]:
    group = KINDS[kind]
    return {ep.name: ep for ep in entry_points(group=group)}


def names(kind: str) -> list[str]:
    return sorted(_entry_points(kind))


def describe(kind: str) -> list[PluginInfo]:
    """Plugin names and their import paths, without importing any of them."""
    return [PluginInfo(kind, name, ep.value, ep.dist.name if ep.dist else None)
            for name, ep in sorted(_entry_points(kind).items())]


def load(kind: str, name: str) -> Any:
    """Imports and returns the plugin object; unknown names suggest the closest one."""
    eps = _entry_points(kind)
    if name not in eps:
        raise UnknownPlugin(kind, name, eps)
    try:
        return eps[name].load()
    except ModuleNotFoundError as exc:
        missing = (exc.name or "a module").split(".")[0]
        raise MissingDependency(missing, f"the {kind} '{name}'") from exc


def create(kind: str, name: str) -> Any:
    """Loads a plugin class and instantiates it (targets are plain data and returned as is)."""
    obj = load(kind, name)
    return obj() if isinstance(obj, type) else obj


def load_all(kind: str) -> tuple[list[Any], dict[str, Exception]]:
    """Every loadable plugin of a kind, and the errors of those that are not: one broken third-party
    plugin must not break work that never asks for it."""
    loaded, broken = [], {}
    for name in names(kind):
        try:
            loaded.append(load(kind, name))
        except MissingDependency as exc:
            broken[name] = exc
    return loaded, broken
