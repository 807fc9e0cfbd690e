"""Finds plugins through entry points, the same way a third-party `edgepipe-foo` package registers.

Listing reads package metadata only; a plugin's module is imported when it is first used, and checked
against its kind's contract then (`check`), so the core can read every declared member plainly.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from edge_pipeline import contracts
from edge_pipeline.errors import ConfigError, MissingDependency, PluginError, UnknownPlugin

KINDS = {"exporter": "edgepipe.exporters", "transform": "edgepipe.transforms",
         "runner": "edgepipe.runners", "target": "edgepipe.targets",
         "transport": "edgepipe.transports", "bundler": "edgepipe.bundlers"}

@dataclass(frozen=True)
class PluginInfo:
    kind: str
    name: str
    value: str
    distribution: str | None


@lru_cache(maxsize=None)
def _entry_points(kind: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=KINDS[kind])}


def names(kind: str) -> list[str]:
    return sorted(_entry_points(kind))


def describe(kind: str) -> list[PluginInfo]:
    """Plugin names and their import paths, without importing any of them."""
    return [PluginInfo(kind, name, ep.value, ep.dist.name if ep.dist else None)
            for name, ep in sorted(_entry_points(kind).items())]


def check(kind: str, obj: Any, name: str | None = None) -> Any:
    """Verifies a plugin against its kind's contract (contracts.MEMBERS) and returns it, absent optional
    members set to their documented defaults; a broken one raises a one-line PluginError naming it and the
    member. `name`: its entry-point name, which its own `name` must match."""
    if kind not in KINDS:
        raise PluginError(f"unknown plugin kind '{kind}' (kinds: {', '.join(KINDS)})")
    return contracts.verify(kind, obj, name, names)


def load(kind: str, name: str) -> Any:
    """Imports, checks and returns the plugin object; unknown names suggest the closest one."""
    eps = _entry_points(kind)
    if name not in eps:
        raise UnknownPlugin(kind, name, eps)
    try:
        obj = eps[name].load()
    except ModuleNotFoundError as exc:
        missing = (exc.name or "a module").split(".")[0]
        raise MissingDependency(missing, f"the {kind} '{name}'") from exc
    return check(kind, obj, name)


def create(kind: str, name: str) -> Any:
    """Loads a plugin class and instantiates it (targets are plain data and returned as is)."""
    obj = load(kind, name)
    return obj() if isinstance(obj, type) else obj


def load_all(kind: str) -> tuple[list[Any], dict[str, Exception]]:
    """Every loadable plugin of a kind, and the errors of those that are not (a missing dependency, a broken
    contract): one broken third-party plugin must not break work that never asks for it."""
    loaded, broken = [], {}
    for name in names(kind):
        try:
            loaded.append(load(kind, name))
        except (MissingDependency, PluginError) as exc:
            broken[name] = exc
    return loaded, broken


def url_scheme(url: str) -> str:
    """The scheme of a `--device` URL: `ssh` for ssh://..., `adb` for adb, adb:SERIAL and adb?benchmark=..."""
    end = next((i for i, c in enumerate(url) if not (c.isascii() and (c.isalnum() or c in "+-."))), len(url))
    return url[:end].lower()


def transport_for(url: str | None) -> Any:
    """The transport instance that answers a `--device` URL (None: "local", this host), with the URL already
    validated by it: a malformed or unanswered URL is a one-line ConfigError before any work."""
    if url is None:
        return create("transport", "local")
    scheme = url_scheme(url)
    transports = load_all("transport")[0]
    chosen = next((t for t in transports if scheme in t.schemes), None)
    if chosen is None:
        known = ", ".join(sorted(s for t in transports for s in t.schemes))
        raise ConfigError(f"--device '{url}': no transport answers the scheme '{scheme}' (schemes: {known}); "
                          f"e.g. ssh://user@host[:port] or adb[:SERIAL]")
    transport = chosen() if isinstance(chosen, type) else chosen
    transport.parse(url)
    return transport
