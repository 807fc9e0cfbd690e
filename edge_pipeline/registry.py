"""Finds plugins through entry points, the same way a third-party `edgepipe-foo` package registers.

Listing reads package metadata only; a plugin's module is imported when it is first used, and checked
against its kind's contract then (`check`), so the core can read every declared member plainly.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import TypeVar, overload

from edge_pipeline.errors import ConfigError, MissingDependency, PluginError, UnknownPlugin
from edge_pipeline.plugins import Bundler, Exporter, Plugin, Runner, Source, Transform, Transport
from edge_pipeline.plugins.contract import describe as describe_plugin
from edge_pipeline.plugins.contract import verify
from edge_pipeline.plugins.model import DataBundle, Model
from edge_pipeline.types import Target

KINDS = {"exporter": "edgepipe.exporters", "transform": "edgepipe.transforms",
         "runner": "edgepipe.runners", "target": "edgepipe.targets",
         "transport": "edgepipe.transports", "bundler": "edgepipe.bundlers", "source": "edgepipe.sources"}
BASES: dict[str, type[Plugin]] = {"exporter": Exporter, "transform": Transform, "runner": Runner,
                                  "transport": Transport, "bundler": Bundler, "source": Source}
EXAMPLES_GROUP = "edgepipe.examples"   # built-in example models: name -> load() returning (Model, DataBundle)
P = TypeVar("P", bound=Plugin)
Example = Callable[[], tuple[Model, DataBundle]]

@dataclass(frozen=True)
class PluginInfo:
    kind: str
    name: str
    value: str
    distribution: str | None


@lru_cache(maxsize=None)
def _entry_points(kind: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=KINDS.get(kind, kind))}


def names(kind: str) -> list[str]:
    return sorted(_entry_points(kind))


def describe(kind: str) -> list[PluginInfo]:
    """Plugin names and their import paths, without importing any of them."""
    return [PluginInfo(kind, name, ep.value, ep.dist.name if ep.dist else None)
            for name, ep in sorted(_entry_points(kind).items())]


def check(kind: str, obj: object, name: str | None = None) -> object:
    """Verifies a plugin against its kind's base class and returns it; a broken one raises a one-line PluginError
    naming it and the member. `name`: its entry-point name, which its own `name` must match."""
    if kind not in KINDS:
        raise PluginError(f"unknown plugin kind '{kind}' (kinds: {', '.join(KINDS)})")
    if kind == "target":
        return _check_target(obj, name)
    return verify(BASES[kind], obj, name, names)


def _check_target(obj: object, name: str | None) -> Target:
    who = describe_plugin("target", obj, name)
    if not isinstance(obj, Target):
        raise PluginError(f"{who} breaks the target contract: it is a {type(obj).__name__}, not an "
                          f"edge_pipeline.types.Target")
    if not obj.outputs:
        raise PluginError(f"{who} breaks the target contract: 'outputs' is empty")
    if name is not None and obj.name != name:
        raise PluginError(f"{who} breaks the target contract: 'name' is {obj.name!r}, but its entry point is "
                          f"named '{name}'")
    return obj


def _load_object(kind: str, name: str) -> object:
    eps = _entry_points(kind)
    if name not in eps:
        raise UnknownPlugin(kind, name, eps)
    try:
        return eps[name].load()
    except ModuleNotFoundError as exc:
        missing = (exc.name or "a module").split(".")[0]
        raise MissingDependency(missing, f"the {kind} '{name}'") from exc
    except Exception as exc:   # a plugin module that fails to import: its own one-line error, not a traceback
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise PluginError(f"the {kind} '{name}' ({eps[name].value}) does not load: {type(exc).__name__}: "
                          f"{first}") from exc


def load(kind: str, name: str) -> object:
    """Imports, checks and returns the plugin class (a Target for targets); unknown names suggest the closest."""
    return check(kind, _load_object(kind, name), name)


@overload
def plugin(base: type[P], name: str) -> type[P]: ...
@overload
def plugin(base: type[P], name: None) -> None: ...
def plugin(base: type[P], name: str | None) -> type[P] | None:
    """The checked plugin class, typed as `base`: its kind's base class or a narrower one (a Bridge, a Pruner);
    None for no name."""
    if name is None:
        return None
    loaded = load(base.kind, name)
    if not (isinstance(loaded, type) and issubclass(loaded, base)):
        raise PluginError(f"the {base.kind} '{name}' is not a {base.__qualname__}")
    return loaded


def create(base: type[P], name: str) -> P:
    """A new instance of a plugin of the kind `base`."""
    return plugin(base, name)()


def target(name: str) -> Target:
    loaded = load("target", name)
    if not isinstance(loaded, Target):
        raise PluginError(f"the target '{name}' is not an edge_pipeline.types.Target")
    return loaded


def example(name: str) -> Example:
    """A built-in example's loader (`edgepipe.examples`)."""
    loader = _load_object(EXAMPLES_GROUP, name)
    if not callable(loader):
        raise PluginError(f"the example '{name}' is not a loader function")
    return loader


def load_all(base: type[P]) -> tuple[list[type[P]], dict[str, Exception]]:
    """Every loadable plugin of `base`'s kind that is a `base` (all transforms, or only the bridges), and the errors
    of those that do not load (a missing dependency, a broken contract): one broken third-party plugin must not
    break work that never asks for it."""
    loaded: list[type[P]] = []
    broken: dict[str, Exception] = {}
    for name in names(base.kind):
        try:
            found = load(base.kind, name)
        except (MissingDependency, PluginError) as exc:
            broken[name] = exc
            continue
        if isinstance(found, type) and issubclass(found, base):
            loaded.append(found)
    return loaded, broken


def url_scheme(url: str) -> str:
    """The scheme of a `--device` URL: `ssh` for ssh://..., `adb` for adb, adb:SERIAL and adb?benchmark=..."""
    end = next((i for i, c in enumerate(url) if not (c.isascii() and (c.isalnum() or c in "+-."))), len(url))
    return url[:end].lower()


def transport_for(url: str | None) -> Transport:
    """The transport instance that answers a `--device` URL (None: "local", this host), with the URL already
    validated by it: a malformed or unanswered URL is a one-line ConfigError before any work."""
    if url is None:
        return create(Transport, "local")
    scheme = url_scheme(url)
    transports = load_all(Transport)[0]
    chosen = next((t for t in transports if scheme in t.schemes), None)
    if chosen is None:
        known = ", ".join(sorted(s for t in transports for s in t.schemes))
        raise ConfigError(f"--device '{url}': no transport answers the scheme '{scheme}' (schemes: {known}); "
                          f"e.g. ssh://user@host[:port] or adb[:SERIAL]")
    transport = chosen()
    transport.parse(url)
    return transport
