"""Imports and calls a user's code (factories, data functions, metrics) so that any failure is one clear line
naming the reference; every source module uses it, so it depends on nothing else in `sources`."""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path

from edge_pipeline.errors import InputError


def resolve_callable(ref: str, what: str, base_dir: str | None = None) -> Callable[..., object]:
    """Imports `pkg.module:attr`, with the config's folder importable, and names what failed."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise InputError(f"{what} '{ref}' must look like 'package.module:function'")
    if base_dir and base_dir not in sys.path:
        sys.path.insert(0, base_dir)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise InputError(f"{what} '{ref}': module '{exc.name}' not found (searched from "
                         f"{base_dir or Path.cwd()})") from exc
    except Exception as exc:
        raise InputError(f"{what} '{ref}': importing '{module_name}' raised {type(exc).__name__}: {exc}") from exc
    try:
        found = getattr(module, attr)   # the one dynamic lookup: the user names the attribute
    except AttributeError as exc:
        raise InputError(f"{what} '{ref}': '{module_name}' has no attribute '{attr}'") from exc
    if not callable(found):
        raise InputError(f"{what} '{ref}' is not callable (it is a {type(found).__name__})")
    return found


def call_user(func: Callable[..., object], ref: str, what: str, *args: object) -> object:
    """Calls a user's function so that its exception becomes a one-line InputError."""
    try:
        return func(*args)
    except Exception as exc:
        raise InputError(f"{what} '{ref}' raised {type(exc).__name__}: {exc}") from exc
