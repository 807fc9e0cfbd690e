"""Pruning for PyTorch and Keras sources (Keras: see keras_pruning.py), applied once in the source stage before
every export.

- `prune-structured`: torch-pruning's dependency-graph pruner removes whole channels (coupled layers follow), so
  the exported model really has fewer parameters and MACs. The classifier's last layer keeps its outputs.
- `prune-unstructured`: global L1 magnitude pruning (torch.nn.utils.prune) zeroes the smallest weights; the
  file stays as large (zeros are still stored) and only compression realizes the gain: the report says so.

An optional fine-tune callback (`"pkg.module:fn"`, called as `fn(module)` and returning the module or None)
recovers accuracy. The pruned module travels to the export workers as a weights-only state dict plus a JSON of
the changed layer shapes, applied to a freshly built dense model: nothing is unpickled.
"""
from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar, cast

from edge_pipeline.errors import EdgepipeError, InputError, StageFailed
from edge_pipeline.plugins import DataBundle, Model, Pruner, QuantizeSettings
from edge_pipeline.plugins.transform import FineTune
from edge_pipeline.types import JsonObject

from . import keras_pruning

if TYPE_CHECKING:
    import keras
    import torch

SHAPE_ATTRS = ("in_channels", "out_channels", "groups", "in_features", "out_features", "num_features")
M = TypeVar("M")


def _unchanged(module: M) -> M:
    return module


@dataclass(frozen=True)
class Pruned(Generic[M]):
    """A pruned module, what settles it after fine-tuning (bake or re-apply a mask), and notes for the report."""

    module: M
    finish: Callable[[M], M] = _unchanged
    notes: JsonObject = field(default_factory=dict)


class PruneBase(Pruner):
    frameworks: ClassVar[tuple[str, ...]] = ("torch", "tensorflow")
    needs_calibration: ClassVar[bool] = False
    distributions: ClassVar[tuple[str, ...]] = ("torch", "torch-pruning", "keras")

    def __init__(self, amount: float = 0.5, fine_tune: FineTune | None = None, scope: str = "global"):
        if not 0 < amount < 1:
            raise InputError(f"prune amount must be between 0 and 1 (exclusive), got {amount}")
        super().__init__(amount, fine_tune, scope)

    @abstractmethod
    def _prune_torch(self, module: torch.nn.Module, example: tuple[torch.Tensor, ...]) -> Pruned[torch.nn.Module]:
        """Prunes `module` in place."""

    @abstractmethod
    def _prune_keras(self, module: keras.Model) -> Pruned[keras.Model]:
        """Prunes `module` in place or rebuilds it smaller."""

    def apply(self, model: Model, data: DataBundle, settings: QuantizeSettings) -> Model:
        if model.framework == "tensorflow":
            keras_model = _keras_model(model)
            before = keras_pruning.measure(keras_model)
            pruned_keras = self._prune_keras(keras_model)
            module: object = pruned_keras.finish(self._fine_tuned(pruned_keras.module))
            after, notes = keras_pruning.measure(module), pruned_keras.notes
        else:
            torch_module, example = _torch_module(model), model.example_inputs
            before = measure(torch_module, example)
            pruned = self._prune_torch(torch_module, example)
            tuned = self._fine_tuned(pruned.module.train()) if self.fine_tune is not None else pruned.module
            module = pruned.finish(tuned).eval()
            after, notes = measure(module, example), pruned.notes
        stats = {"kind": self.prune_kind, "amount": self.amount, "scope": self.scope, "before": before, "after": after,
                 "fine_tuned": self.fine_tune is not None, **notes}
        return replace(model, module=module).with_provenance(pruning=stats)

    def _fine_tuned(self, module: M) -> M:
        """The user's fine-tune callback's model (the same kind it was given), or `module` when it returns None."""
        if self.fine_tune is None:
            return module
        try:
            tuned = self.fine_tune(module)
        except EdgepipeError:
            raise
        except Exception as exc:
            raise StageFailed(f"the fine-tune callback raised {type(exc).__name__}: {exc}") from exc
        return cast(M, tuned) if tuned is not None else module

    def save(self, model: Model, folder: Path) -> None:
        if model.framework == "tensorflow":   # Keras: the rebuilt model, config and weights, loaded in safe mode
            folder.mkdir(parents=True, exist_ok=True)
            model.module.save(folder / "pruned.keras")
        else:
            save_pruned(model.module, folder)

    def restore(self, model: Model, folder: Path) -> Model:
        if (folder / "pruned.keras").is_file():
            from targets.sources.keras_source import load_keras_file

            return replace(model, module=load_keras_file(folder / "pruned.keras", safe_mode=True))
        return load_pruned(model, folder)


def _keras_model(model: Model) -> keras.Model:
    import keras

    if not isinstance(model.module, keras.Model):
        raise InputError("pruning needs a Keras model (.keras file or factory), not a SavedModel folder")
    return model.module


def _torch_module(model: Model) -> torch.nn.Module:
    import torch

    if model.framework != "torch":
        raise InputError(f"pruning is implemented for PyTorch and Keras models; this one is {model.framework}")
    if isinstance(model.module, torch.fx.GraphModule):
        raise InputError("pruning needs the model's nn.Module (a factory), not a torch.export .pt2 graph")
    return model.module


class StructuredPrune(PruneBase):
    name, prune_kind = "prune-structured", "structured"

    def _prune_torch(self, module: torch.nn.Module, example: tuple[torch.Tensor, ...]) -> Pruned[torch.nn.Module]:
        import torch
        import torch_pruning as tp

        final = [m for m in module.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))][-1:]
        pruner = tp.pruner.MetaPruner(module, example, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                      pruning_ratio=self.amount, ignored_layers=final)
        pruner.step()
        return Pruned(module)

    def _prune_keras(self, module: keras.Model) -> Pruned[keras.Model]:
        smaller, coupled = keras_pruning.structured(module, self.amount)
        return Pruned(smaller, notes={"kept_whole": coupled})   # coupled to an Add/Concatenate/output: not pruned


class UnstructuredPrune(PruneBase):
    """Global (one threshold) or per-layer (the same share in each layer) L1 magnitude; the mask holds during
    fine-tuning (torch: pruning re-parametrization; Keras: applied again after it)."""
    name, prune_kind = "prune-unstructured", "unstructured"
    scopes = ("global", "layer")   # one magnitude threshold across layers, or the same share in each
    distributions = ("torch", "keras")

    def _prune_torch(self, module: torch.nn.Module, example: tuple[torch.Tensor, ...]) -> Pruned[torch.nn.Module]:
        import torch
        from torch.nn.utils import prune

        targets = [(m, "weight") for m in module.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
        if self.scope == "layer":
            for layer, name in targets:
                prune.l1_unstructured(layer, name, amount=self.amount)
        else:
            prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=self.amount)

        def bake(tuned: torch.nn.Module) -> torch.nn.Module:
            for layer, name in targets:
                prune.remove(layer, name)     # bake the mask in: plain weights with zeros
            return tuned
        return Pruned(module, bake)

    def _prune_keras(self, module: keras.Model) -> Pruned[keras.Model]:
        masks = keras_pruning.unstructured_masks(module, self.amount, per_layer=self.scope == "layer")
        keras_pruning.apply_masks(masks)

        def reapply(tuned: keras.Model) -> keras.Model:
            keras_pruning.apply_masks(masks)
            return tuned
        return Pruned(module, reapply)


def measure(module: torch.nn.Module, example: tuple[torch.Tensor, ...]) -> JsonObject:
    """Parameters, MACs (torch-pruning's counter) and the share of exactly-zero weights."""
    import torch
    import torch_pruning as tp

    with torch.no_grad():
        macs, params = tp.utils.count_ops_and_params(module, example)
    weights = [p for n, p in module.named_parameters() if n.endswith("weight")]
    zeros = sum(int((p == 0).sum()) for p in weights)
    return {"params": int(params), "macs": int(macs),
            "sparsity": round(zeros / max(1, sum(p.numel() for p in weights)), 4)}


def save_pruned(module: torch.nn.Module, folder: Path) -> None:
    """Weights-only state dict + the layer shape attributes pruning changed (plain int attributes of a layer)."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    torch.save(module.state_dict(), folder / "pruned_weights.pt")
    shapes = {name: {a: v for a in SHAPE_ATTRS if isinstance(v := vars(m).get(a), int)}
              for name, m in module.named_modules()}
    (folder / "pruned_shapes.json").write_text(json.dumps({k: v for k, v in shapes.items() if v}, sort_keys=True))


def load_pruned(model: Model, folder: Path) -> Model:
    """The pruned module rebuilt from a fresh dense one: tensors and shape attributes replaced in place."""
    import torch

    state = torch.load(folder / "pruned_weights.pt", map_location="cpu", weights_only=True)
    shapes = json.loads((folder / "pruned_shapes.json").read_text())
    module = model.module
    modules = dict(module.named_modules())
    for key, tensor in state.items():
        owner, _, attr = key.rpartition(".")
        layer = modules[owner]
        if attr in layer._parameters:
            layer._parameters[attr] = torch.nn.Parameter(tensor, requires_grad=False)
        else:
            layer._buffers[attr] = tensor
    for name, attrs in shapes.items():
        for attr, value in attrs.items():
            setattr(modules[name], attr, value)
    return replace(model, module=module.eval())
