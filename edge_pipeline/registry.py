"""Finds plugins through entry points, the same way a third-party `edgepipe-foo` package registers.

A plugin's module is imported when it is first used, and checked against its kind's contract then (`check`), so
the core can read every declared member plainly. A name registered twice resolves to the built-in (then to the
first distribution by name), never to whichever sys.path lists first; `hidden` names the losers. `survey` loads
every plugin (plugin modules import no framework) so a listing can show each broken one instead of failing.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import TypeVar, overload

from edge_pipeline.errors import ConfigError, EdgepipeError, MissingDependency, PluginError, UnknownPlugin
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
BUILTIN = "edgepipe"                   # the distribution of the built-in plugins: it wins a name clash
P = TypeVar("P", bound=Plugin)
T = TypeVar("T")
Example = Callable[[], tuple[Model, DataBundle]]

@dataclass(frozen=True)
class PluginInfo:
    kind: str
    name: str
    value: str
    distribution: str | None


class Listing(list[T]):
    """What a listing shows, and a warning for each plugin it leaves out (broken, or hidden by a clash): still a
    list, so callers that only iterate are unchanged."""

    def __init__(self, items: Iterable[T] = (), warnings: Iterable[str] = ()) -> None:
        super().__init__(items)
        self.warnings: list[str] = list(warnings)


def _resolve(kind: str) -> tuple[dict[str, EntryPoint], list[str]]:
    """The entry point each name resolves to, and a warning for each one a clash hides."""
    chosen: dict[str, EntryPoint] = {}
    hidden_ones: list[str] = []
    for ep in sorted(entry_points(group=KINDS.get(kind, kind)), key=lambda e: (_dist(e) != BUILTIN, _dist(e))):
        winner = chosen.setdefault(ep.name, ep)
        if winner is not ep and (winner.value, _dist(winner)) != (ep.value, _dist(ep)):
            which = "the built-in" if _dist(winner) == BUILTIN else f"{_dist(winner)}'s"
            hidden_ones.append(f"{_dist(ep)}'s {kind} '{ep.name}' ({ep.value}) is hidden: {which} {kind} of the "
                               f"same name is used instead")
    return chosen, hidden_ones


@lru_cache(maxsize=None)
def _entry_points(kind: str) -> dict[str, EntryPoint]:
    return _resolve(kind)[0]


def _dist(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist else "an unknown distribution"


def _who(kind: str, name: str) -> str:
    """How errors name a plugin: a third-party one with its distribution, so the user knows what to fix."""
    ep = _entry_points(kind).get(name)
    owner = f" of {_dist(ep)}" if ep is not None and _dist(ep) != BUILTIN else ""
    return f"the {kind} '{name}'{owner}"


def names(kind: str) -> list[str]:
    return sorted(_entry_points(kind))


def hidden(kind: str) -> list[str]:
    """A warning for each `kind` plugin that a same-named one (the built-in first) hides."""
    return _resolve(kind)[1]


def skipped(kind: str, name: str, exc: Exception) -> str:
    """The warning for a plugin a listing leaves out because it does not load: its name, distribution, reason."""
    text = str(exc)
    return f"{text}; it is not listed" if text.startswith(_who(kind, name)) else \
        f"{_who(kind, name)} is not listed: {text}"


def survey() -> Listing[PluginInfo]:
    """Every plugin of every kind that loads and meets its contract, with a warning naming each that does not
    and each hidden by a clash: one broken third-party plugin must not hide the others."""
    found: Listing[PluginInfo] = Listing()
    for kind in KINDS:
        found.warnings += hidden(kind)
        for info in describe(kind):
            try:
                load(kind, info.name)
            except (MissingDependency, PluginError) as exc:
                found.warnings.append(skipped(kind, info.name, exc))
                continue
            found.append(info)
    return found


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
    ep = _entry_points("target").get(name) if name is not None else None
    who = f"the target '{name}' ({ep.value})" if ep is not None else describe_plugin("target", obj, name)
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
    ep = eps[name]
    try:
        return ep.load()
    except ModuleNotFoundError as exc:
        missing = (exc.name or "a module").split(".")[0]
        if missing != ep.module.split(".")[0]:
            raise MissingDependency(missing, _who(kind, name)) from exc
        raise PluginError(f"{_who(kind, name)} ({ep.value}) does not load: its module is not installed") from exc
    except Exception as exc:   # a plugin module that fails to import: its own one-line error, not a traceback
        raise PluginError(f"{_who(kind, name)} ({ep.value}) does not load: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {first}"


def load(kind: str, name: str) -> object:
    """Imports, checks and returns the plugin class (a Target for targets); unknown names suggest the closest.
    Any failure is a one-line error naming the plugin and, for a third-party one, its distribution."""
    obj = _load_object(kind, name)
    try:
        return check(kind, obj, name)
    except PluginError as exc:
        plain = f"the {kind} '{name}'"
        if _who(kind, name) == plain or not str(exc).startswith(plain):
            raise
        raise PluginError(_who(kind, name) + str(exc)[len(plain):]) from exc
    except EdgepipeError:
        raise
    except Exception as exc:   # a declaration that raises while it is checked is a broken contract too
        raise PluginError(f"{_who(kind, name)} cannot be checked: {_reason(exc)}") from exc


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
