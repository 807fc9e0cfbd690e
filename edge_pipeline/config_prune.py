"""`prune = { ... }` checked against the installed pruners, and the pruner a kind names. Split from config.py
(which re-exports these names, so callers keep importing them from there)."""
from __future__ import annotations

from edge_pipeline import registry
from edge_pipeline.config_files import check_keys
from edge_pipeline.errors import ConfigError
from edge_pipeline.json_types import JsonObject
from edge_pipeline.plugins import Pruner

PRUNE_KEYS = {"amount": (int, float), "kind": str, "fine-tune": str, "scope": str}


def check_prune(table: JsonObject, path: str) -> JsonObject:
    """`prune = { amount = 0.5, kind = "structured", fine-tune = "pkg.module:fn", scope = "global" }`, checked."""
    check_keys(table, PRUNE_KEYS, path)
    amount = table.get("amount")
    if amount is None or isinstance(amount, bool) or not 0 < amount < 1:
        raise ConfigError(f"'{path}.amount' must be a fraction between 0 and 1 (exclusive), got {amount!r}")
    kind = table.get("kind", "unstructured")
    pruners = installed_pruners()
    if kind not in pruners:
        raise ConfigError(f"'{path}.kind' must be one of: {', '.join(pruners)}; got {kind!r}")
    scopes = pruners[str(kind)].scopes
    scope = table.get("scope", scopes[0])
    if scope not in scopes:
        each = "; ".join(k + ": " + ", ".join(p.scopes) for k, p in pruners.items())
        raise ConfigError(f"'{path}.scope' must be one of: {', '.join(scopes)} for {kind} pruning (the scopes each "
                          f"pruner takes: {each}); got {scope!r}")
    return {"amount": float(amount), "kind": kind, "fine_tune": table.get("fine-tune"), "scope": scope}


def installed_pruners() -> dict[str, type[Pruner]]:
    """`[prune] kind` -> the installed pruner offering it, in name order (also `edgepipe tune`'s search order)."""
    return dict(sorted((p.prune_kind, p) for p in registry.load_all(Pruner)[0]))


def pruner_for(kind: str) -> type[Pruner]:
    """The installed pruner offering `[prune] kind` (checked when the config was read; a pruner uninstalled since
    is named here)."""
    pruners = installed_pruners()
    if kind not in pruners:
        raise ConfigError(f"prune kind '{kind}': no installed pruner offers it (kinds: {', '.join(pruners)})")
    return pruners[kind]
