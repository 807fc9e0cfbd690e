"""Loads a user's PyTorch model (factory + weights, or a torch.export .pt2) safely."""
from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from edge_pipeline.errors import InputError
from edge_pipeline.plugins import Model
from edge_pipeline.sources.user_data import describe, example_inputs, short
from edge_pipeline.tensors import Tensors
from edge_pipeline.types import SourceSpec

_GLOBAL = re.compile(r"global:? GLOBAL ([\w.]+)|allowlist(?: this global)?.*?\[([\w.]+)\]", re.S)


def from_module(module: torch.nn.Module, spec: SourceSpec, provenance: dict[str, Any]) -> tuple[Model, Tensors]:
    if spec.weights:
        path = existing(Path(spec.base_dir) / spec.weights, "weights file")
        try:
            module.load_state_dict(load_state_dict(path))
        except RuntimeError as exc:
            raise InputError(f"weights file {path} does not fit the model: {short(exc)}") from exc
        provenance = {**provenance, "weights": str(path)}
    if not isinstance(module, torch.fx.GraphModule):   # an unlifted torch.export module refuses .eval()
        module = module.eval()
    example = example_inputs(spec, forward_names(module))
    check_runs(module, example)
    return (Model("torch", module, tuple(torch.from_numpy(a.copy()) for a in example), provenance,
                  input_names=example.names), example)


def forward_names(module: torch.nn.Module) -> tuple[str, ...]:
    """The positional parameters of `forward`, in order: the model's input names (empty if it takes *args)."""
    import inspect

    try:
        parameters = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return ()
    names = []
    for p in parameters:
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            return ()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
    return tuple(names)


def load_pt2(spec: SourceSpec, path: Path) -> tuple[Model, Tensors]:
    existing(path, "model file")
    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise InputError(f"model file {path} is not a readable torch.export archive: {type(exc).__name__}: {short(exc)}") from exc
    return from_module(program.module(), spec, {"kind": "pt2", "path": str(path)})


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """`weights_only=True`: a weights file that needs arbitrary unpickling is refused, not executed."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        needed = _GLOBAL.search(str(exc))
        if needed is None:
            detail = re.search(r"WeightsUnpickler error: \s*(.+)", str(exc))
            reason = detail.group(1).strip() if detail else short(exc)
            raise InputError(f"weights file {path} is corrupt or not a torch file ({reason})") from exc
        raise InputError(f"refused to load {path}: it needs '{needed.group(1) or needed.group(2)}' to unpickle, and "
                         f"weights are loaded with weights_only=True for safety. Save a plain state_dict instead.") from exc
    except Exception as exc:
        raise InputError(f"weights file {path} is corrupt or not a torch file: {type(exc).__name__}: {short(exc)}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"weights file {path} does not hold a state_dict of tensors")
    return state


def existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")
    return path


def check_runs(module: torch.nn.Module, example: Tensors) -> None:
    """Runs the model once so a wrong input shape is reported before any converter sees it."""
    try:
        with torch.no_grad():
            module(*(torch.from_numpy(a.copy()) for a in example))
    except Exception as exc:
        raise InputError(f"the model does not accept example inputs of shape {describe(example)}: "
                         f"{type(exc).__name__}: {short(exc)}") from exc
