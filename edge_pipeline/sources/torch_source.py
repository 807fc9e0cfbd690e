"""Loads a user's PyTorch model (factory + weights, or a torch.export .pt2) and its data, safely."""
from __future__ import annotations

import pickle
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..plugins import DataBundle, Model
from ..types import SourceSpec
from . import call_user, resolve_callable

_GLOBAL = re.compile(r"global:? GLOBAL ([\w.]+)|allowlist(?: this global)?.*?\[([\w.]+)\]", re.S)


def load_torch_source(spec: SourceSpec) -> tuple[Model, DataBundle]:
    base = Path(spec.base_dir)
    module, provenance = _load_module(spec, base)
    example = _example_inputs(spec, module, base)
    check_runs(module, example)
    calibration = _batches(spec.calibration, spec, "calibration") if spec.calibration else None
    eval_x, eval_y = _eval_data(spec) if spec.evaluate else (example, None)
    data = DataBundle(example=example,
                      calibration=calibration if calibration is not None else np.empty((0, *example.shape[1:]), np.float32),
                      eval_inputs=eval_x, eval_labels=eval_y)
    check_sample_shape(data)
    model = Model("torch", module, (torch.from_numpy(example.copy()),), provenance)
    return model, data


def _load_module(spec: SourceSpec, base: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    assert spec.model is not None
    if spec.model.endswith(".pt2"):
        path = _existing(base / spec.model, "model file")
        try:
            program = torch.export.load(str(path))
        except Exception as exc:
            raise InputError(f"model file {path} is not a readable torch.export archive: {type(exc).__name__}: {_short(exc)}") from exc
        return program.module(), {"kind": "pt2", "path": str(path)}
    factory = resolve_callable(spec.model, "model factory", str(base))
    module = call_user(factory, spec.model, "model factory")
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"model factory '{spec.model}' returned {type(module).__name__}, expected torch.nn.Module")
    provenance: dict[str, Any] = {"kind": "factory", "factory": spec.model}
    if spec.weights:
        path = _existing(base / spec.weights, "weights file")
        module.load_state_dict(load_state_dict(path))
        provenance["weights"] = str(path)
    return module.eval(), provenance


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """`weights_only=True`: a weights file that needs arbitrary unpickling is refused, not executed."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        needed = _GLOBAL.search(str(exc))
        if needed is None:
            detail = re.search(r"WeightsUnpickler error: \s*(.+)", str(exc))
            reason = detail.group(1).strip() if detail else _short(exc)
            raise InputError(f"weights file {path} is corrupt or not a torch file ({reason})") from exc
        raise InputError(f"refused to load {path}: it needs '{needed.group(1)}' to unpickle, and weights are "
                         f"loaded with weights_only=True for safety. Save a plain state_dict instead.") from exc
    except Exception as exc:
        raise InputError(f"weights file {path} is corrupt or not a torch file: {type(exc).__name__}: {_short(exc)}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"weights file {path} does not hold a state_dict of tensors")
    return state


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")
    return path


def _example_inputs(spec: SourceSpec, module: torch.nn.Module, base: Path) -> np.ndarray:
    value = spec.example_inputs
    if value is None:
        raise InputError("'example-inputs' is required for a user model: a shape like [1, 3, 224, 224] "
                         "or 'package.module:function' returning a tensor")
    if isinstance(value, list):
        return np.random.default_rng(0).standard_normal(value).astype(np.float32)
    result = call_user(resolve_callable(value, "example-inputs", str(base)), value, "example-inputs")
    if isinstance(result, (tuple, list)):
        if len(result) != 1:
            raise InputError(f"example-inputs '{value}' gave {len(result)} tensors; edgepipe handles single-input models")
        result = result[0]
    return to_array(result, f"example-inputs '{value}'")


def to_array(value: Any, what: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.ascontiguousarray(np.asarray(value, dtype=np.float32))
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} is not a tensor or array: {exc}") from exc
    if array.ndim < 1:
        raise InputError(f"{what} must have a batch dimension, got a scalar")
    return array


def _batches(ref: str, spec: SourceSpec, what: str) -> np.ndarray:
    items = call_user(resolve_callable(ref, what, spec.base_dir), ref, what)
    arrays = [to_array(b[0] if isinstance(b, (tuple, list)) else b, f"{what} batch") for b in _iterate(items, ref, what)]
    if not arrays:
        raise InputError(f"{what} '{ref}' yielded no batches")
    return np.concatenate(arrays)


def _eval_data(spec: SourceSpec) -> tuple[np.ndarray, np.ndarray]:
    assert spec.evaluate is not None
    items = call_user(resolve_callable(spec.evaluate, "evaluate", spec.base_dir), spec.evaluate, "evaluate")
    xs, ys = [], []
    for batch in _iterate(items, spec.evaluate, "evaluate"):
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise InputError(f"evaluate '{spec.evaluate}' must yield (inputs, labels) batches")
        xs.append(to_array(batch[0], "evaluate inputs"))
        ys.append(to_array(batch[1], "evaluate labels").astype(np.int64).reshape(-1))
    if not xs:
        raise InputError(f"evaluate '{spec.evaluate}' yielded no batches")
    return np.concatenate(xs), np.concatenate(ys)


def _iterate(items: Any, ref: str, what: str) -> Iterable[Any]:
    if isinstance(items, (torch.Tensor, np.ndarray)):
        return [items]
    try:
        return list(items)
    except TypeError as exc:
        raise InputError(f"{what} '{ref}' must return an iterable of batches, got {type(items).__name__}") from exc


def check_runs(module: torch.nn.Module, example: np.ndarray) -> None:
    """Runs the model once so a wrong input shape is reported before any converter sees it."""
    try:
        with torch.no_grad():
            module(torch.from_numpy(example.copy()))
    except Exception as exc:
        raise InputError(f"the model does not accept example inputs of shape {list(example.shape)}: "
                         f"{type(exc).__name__}: {_short(exc)}") from exc


def check_sample_shape(data: DataBundle) -> None:
    sample = data.example.shape[1:]
    for what, array in (("evaluation", data.eval_inputs), ("calibration", data.calibration)):
        if len(array) and array.shape[1:] != sample:
            raise InputError(f"{what} inputs have sample shape {list(array.shape[1:])}, "
                             f"but example inputs have {list(sample)}")


def _short(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [repr(exc)])[0][:300]
