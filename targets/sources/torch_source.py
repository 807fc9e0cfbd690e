"""PyTorch as a source: a torch.export `.pt2` archive, or a factory's nn.Module plus an optional state_dict file.
Nothing is unpickled beyond plain tensors (`weights_only=True`). torch is imported on first use, so listing
the installed sources stays cheap for a Keras or ONNX build."""
from __future__ import annotations

import hashlib
import inspect
import pickle
import re
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.nesting import ArgumentGroup, argument_groups
from edge_pipeline.plugins import BatchCall, DataBundle, Model, Source
from edge_pipeline.sources.user_data import describe, example_inputs, short
from edge_pipeline.tensors import Tensors, flatten_outputs
from edge_pipeline.types import JsonObject, SourceSpec

if TYPE_CHECKING:
    import torch

STATE_FILE = "state_dict.pt"
_GLOBAL = re.compile(r"global:? GLOBAL ([\w.]+)|allowlist(?: this global)?.*?\[([\w.]+)\]", re.S)


class TorchSource(Source):
    """PyTorch models: `.pt2` files and factories returning a torch.nn.Module."""

    name: ClassVar[str] = "torch"
    framework: ClassVar[str] = "torch"
    layout: ClassVar[str] = "NCHW"
    suffixes: ClassVar[tuple[str, ...]] = (".pt2",)
    factory_packages: ClassVar[tuple[str, ...]] = ("torch",)

    def load_file(self, spec: SourceSpec, path: Path) -> tuple[Model, Tensors]:
        return load_pt2(spec, path)

    def from_object(self, obj: object, spec: SourceSpec, provenance: JsonObject) -> tuple[Model, Tensors]:
        import torch

        if not isinstance(obj, torch.nn.Module):   # e.g. a factory that returned a tensor
            raise InputError(f"model factory '{spec.model}' returned {type(obj).__name__}, expected a "
                             f"torch.nn.Module")
        return from_module(obj, spec, provenance)

    def save_state(self, model: Model, folder: Path) -> None:
        import torch

        folder.mkdir(parents=True, exist_ok=True)
        torch.save(model.module.state_dict(), folder / STATE_FILE)

    def restore_state(self, model: Model, folder: Path) -> Model:
        try:
            model.module.load_state_dict(load_state_dict(folder / STATE_FILE), strict=True)
        except RuntimeError as exc:
            raise InputError(f"model factory '{model.provenance.get('factory')}' built a different model in this "
                             f"process than in the source stage (its weights do not fit: {short(exc)}); a factory "
                             f"must build the same architecture on every call") from exc
        return model

    def fingerprint(self, model: Model) -> str:
        """Hash of every parameter and buffer (name, dtype, shape, bytes) plus the module's class."""
        import torch

        digest = hashlib.sha256(type(model.module).__qualname__.encode())
        for name, tensor in sorted(model.module.state_dict().items()):
            t = tensor.detach().cpu().contiguous()
            digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return digest.hexdigest()

    def count_params(self, model: Model) -> int:
        return int(sum(p.numel() for p in model.module.parameters()))

    def weights_bytes(self, model: Model) -> int:
        return int(sum(t.numel() * t.element_size() for t in model.module.state_dict().values()))

    def reference_outputs(self, model: Model, data: DataBundle) -> Tensors:
        """Per window outputs, and for a language model the references of its prompts beside them."""
        import torch

        from targets.llm.source_decoder import DecoderReference

        outputs = super().reference_outputs(model, data)
        if not isinstance(model.module, DecoderReference):
            return outputs
        with torch.no_grad():
            extra = model.module.prompt_outputs()
        return Tensors((*outputs.names, *extra), (*outputs.arrays, *extra.values()))

    def batch_call(self, model: Model) -> BatchCall:
        import torch

        def call(batch: Tensors) -> list[tuple[str, object]]:   # torch tensors: collect_outputs copies them out
            with torch.no_grad():
                return flatten_outputs(model.module(*(torch.from_numpy(np.array(a)) for a in batch)))
        return call


def from_module(module: torch.nn.Module, spec: SourceSpec, provenance: JsonObject) -> tuple[Model, Tensors]:
    """A live module as the source model: the spec's weights loaded into it, checked on its example inputs."""
    import torch

    if spec.weights:
        path = existing(Path(spec.base_dir) / spec.weights, "weights file")
        try:
            module.load_state_dict(load_state_dict(path))
        except RuntimeError as exc:
            raise InputError(f"weights file {path} does not fit the model: {short(exc)}") from exc
        provenance = {**provenance, "weights": str(path)}
    meta = next((name for name, t in module.state_dict().items() if t.is_meta), None)
    if meta is not None:
        raise InputError(f"the model's weight '{meta}' is on the 'meta' device (a shape with no values): "
                         f"materialise the model (to_empty() and load its weights) before returning it")
    if not isinstance(module, torch.fx.GraphModule):   # an unlifted torch.export module refuses .eval()
        module = module.eval()
    example = example_inputs(spec, forward_names(module))
    groups = argument_groups(forward_names(module), example.names)
    if any(group.parts is not None for group in groups):
        module = flat_arguments(module, groups)
    check_runs(module, example)
    return (Model("torch", module, tuple(torch.from_numpy(a.copy()) for a in example), provenance,
                  input_names=example.names), example)


def flat_arguments(module: torch.nn.Module, groups: tuple[ArgumentGroup, ...]) -> torch.nn.Module:
    """The module behind one tensor per input: an argument `forward` takes as a tuple or dict of tensors (an
    LSTM's `(h, c)`) is rebuilt from its flat parts, so every exporter and runtime sees plain tensors."""
    import torch

    class FlatArguments(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, *flat: torch.Tensor) -> object:
            arguments: list[object] = []
            at = 0
            for group in groups:
                if group.parts is None:
                    arguments.append(flat[at])
                    at += 1
                    continue
                parts = flat[at:at + len(group.parts)]
                at += len(group.parts)
                arguments.append(dict(zip(group.keys, parts)) if group.keys is not None else tuple(parts))
            return self.inner(*arguments)

    FlatArguments.__qualname__ = f"FlatArguments[{type(module).__qualname__}]"
    return FlatArguments().eval()


def forward_names(module: torch.nn.Module) -> tuple[str, ...]:
    """The positional parameters of `forward`, in order: the model's input names (empty if it takes *args)."""
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
    """A torch.export archive: a graph and tensors, no pickled code."""
    import torch

    existing(path, "model file")
    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise InputError(f"model file {path} is not a readable torch.export archive: {type(exc).__name__}: "
                         f"{short(exc)}") from exc
    return from_module(program.module(), spec, {"kind": "pt2", "path": str(path)})


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """`weights_only=True`: a weights file that needs arbitrary unpickling is refused, not executed."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        needed = _GLOBAL.search(str(exc))
        if needed is None:
            detail = re.search(r"WeightsUnpickler error: \s*(.+)", str(exc))
            reason = detail.group(1).strip() if detail else short(exc)
            raise InputError(f"weights file {path} is corrupt or not a torch file ({reason})") from exc
        raise InputError(f"refused to load {path}: it needs '{needed.group(1) or needed.group(2)}' to unpickle, "
                         f"and weights are loaded with weights_only=True for safety. Save a plain state_dict "
                         f"instead.") from exc
    except Exception as exc:
        raise InputError(f"weights file {path} is corrupt or not a torch file: {type(exc).__name__}: "
                         f"{short(exc)}") from exc
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
    import torch

    try:
        with torch.no_grad():
            module(*(torch.from_numpy(a.copy()) for a in example))
    except Exception as exc:
        raise InputError(f"the model does not accept example inputs of shape {describe(example)}: "
                         f"{type(exc).__name__}: {short(exc)}") from exc
