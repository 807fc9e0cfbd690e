"""Builds the live source Model and its DataBundle from a SourceSpec (inside a worker process)."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError, UnknownPlugin
from ..plugins import DataBundle, Model
from ..types import SourceSpec

EXAMPLES = {"torch-digits": "edge_pipeline.examples.torch_digits:load"}


def check_example(spec: SourceSpec) -> None:
    """Cheap check in the parent process, before any worker starts."""
    if spec.model is None and (spec.example or "torch-digits") not in EXAMPLES:
        raise UnknownPlugin("example", spec.example or "", EXAMPLES)


def load_source(spec: SourceSpec) -> tuple[Model, DataBundle]:
    check_example(spec)
    if spec.model is None:
        return resolve_callable(EXAMPLES[spec.example or "torch-digits"], "example")()
    from .torch_source import load_torch_source

    return load_torch_source(spec)


def resolve_callable(ref: str, what: str, base_dir: str | None = None) -> Callable[..., Any]:
    """Imports `pkg.module:attr`, with the config's folder importable, and names what failed."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise InputError(f"{what} '{ref}' must look like 'package.module:function'")
    if base_dir and base_dir not in sys.path:
        sys.path.insert(0, base_dir)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise InputError(f"{what} '{ref}': module '{exc.name}' not found (searched from {base_dir or Path.cwd()})") from exc
    except Exception as exc:
        raise InputError(f"{what} '{ref}': importing '{module_name}' raised {type(exc).__name__}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise InputError(f"{what} '{ref}': '{module_name}' has no attribute '{attr}'") from exc


def call_user(func: Callable[..., Any], ref: str, what: str) -> Any:
    """Calls a user's function so that its exception becomes a one-line InputError."""
    try:
        return func()
    except Exception as exc:
        raise InputError(f"{what} '{ref}' raised {type(exc).__name__}: {exc}") from exc
