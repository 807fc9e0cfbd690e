"""Pruning for PyTorch and Keras sources (Keras: see keras_pruning.py), applied once in the source stage before every export.

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
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from edge_pipeline.errors import EdgepipeError, InputError, StageFailed
from edge_pipeline.plugins import DataBundle, Model, TransformBase

from . import keras_pruning

SHAPE_ATTRS = ("in_channels", "out_channels", "groups", "in_features", "out_features", "num_features")


class PruneBase(TransformBase):
    name: ClassVar[str]
    kind: ClassVar[str]
    frameworks: ClassVar[tuple[str, ...]] = ("torch", "tensorflow")
    needs_calibration: ClassVar[bool] = False
    distributions: ClassVar[tuple[str, ...]] = ("torch", "torch-pruning", "keras")

    def __init__(self, amount: float = 0.5, fine_tune: Any = None, scope: str = "global"):
        if not 0 < amount < 1:
            raise InputError(f"prune amount must be between 0 and 1 (exclusive), got {amount}")
        self.amount, self.fine_tune, self.scope = amount, fine_tune, scope
        self.notes: dict[str, Any] = {}

    def apply(self, model: Model, data: DataBundle) -> Model:
        module = _prunable(model)
        keras = model.framework == "tensorflow"
        meter = (lambda m: keras_pruning.measure(m)) if keras else (lambda m: measure(m, model.example_inputs))
        before = meter(module)
        module = self._prune_keras(module) if keras else self._prune_torch(module, model.example_inputs)
        if self.fine_tune is not None:
            try:
                tuned = self.fine_tune(module if keras else module.train())
            except EdgepipeError:
                raise
            except Exception as exc:
                raise StageFailed(f"the fine-tune callback raised {type(exc).__name__}: {exc}") from exc
            module = tuned if tuned is not None else module
        module = self._finish(module)
        module = module if keras else module.eval()
        stats = {"kind": self.kind, "amount": self.amount, "scope": self.scope, "before": before, "after": meter(module),
                 "fine_tuned": self.fine_tune is not None, **self.notes}
        return replace(model, module=module, provenance={**model.provenance, "pruning": stats})

    def _finish(self, module: Any) -> Any:
        return module

    @staticmethod
    def save(module: Any, folder: Path) -> None:
        if hasattr(module, "get_config"):   # Keras: the rebuilt model, config and weights, loaded in safe mode
            folder.mkdir(parents=True, exist_ok=True)
            module.save(folder / "pruned.keras")
        else:
            save_pruned(module, folder)

    @staticmethod
    def restore(model: Model, folder: Path) -> Model:
        if (folder / "pruned.keras").is_file():
            from targets.sources.keras_source import load_keras_file

            return replace(model, module=load_keras_file(folder / "pruned.keras", safe_mode=True))
        return load_pruned(model, folder)


def _prunable(model: Model) -> Any:
    import torch

    module = model.module
    if model.framework == "tensorflow":
        if not hasattr(module, "get_config"):
            raise InputError("pruning needs a Keras model (.keras file or factory), not a SavedModel folder")
        return module
    if model.framework != "torch":
        raise InputError(f"pruning is implemented for PyTorch and Keras models; this one is {model.framework}")
    if isinstance(module, torch.fx.GraphModule):
        raise InputError("pruning needs the model's nn.Module (a factory), not a torch.export .pt2 graph")
    return module


class StructuredPrune(PruneBase):
    name, kind = "prune-structured", "structured"

    def _prune_torch(self, module: Any, example: tuple[Any, ...]) -> Any:
        import torch
        import torch_pruning as tp

        final = [m for m in module.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))][-1:]
        pruner = tp.pruner.MetaPruner(module, example, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                      pruning_ratio=self.amount, ignored_layers=final)
        pruner.step()
        return module

    def _prune_keras(self, module: Any) -> Any:
        smaller, coupled = keras_pruning.structured(module, self.amount)
        self.notes["kept_whole"] = coupled   # channels coupled to an Add/Concatenate/output: not pruned
        return smaller


class UnstructuredPrune(PruneBase):
    """Global (one threshold) or per-layer (the same share in each layer) L1 magnitude; the mask holds during
    fine-tuning (torch: pruning re-parametrization; Keras: applied again after it)."""
    name, kind = "prune-unstructured", "unstructured"
    distributions = ("torch", "keras")

    def _prune_torch(self, module: Any, example: tuple[Any, ...]) -> Any:
        import torch
        from torch.nn.utils import prune

        self._targets = [(m, "weight") for m in module.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
        if self.scope == "layer":
            for layer, name in self._targets:
                prune.l1_unstructured(layer, name, amount=self.amount)
        else:
            prune.global_unstructured(self._targets, pruning_method=prune.L1Unstructured, amount=self.amount)
        return module

    def _prune_keras(self, module: Any) -> Any:
        self._masks = keras_pruning.unstructured_masks(module, self.amount, per_layer=self.scope == "layer")
        keras_pruning.apply_masks(self._masks)
        return module

    def _finish(self, module: Any) -> Any:
        if hasattr(self, "_masks"):
            keras_pruning.apply_masks(self._masks)
            return module
        from torch.nn.utils import prune

        for layer, name in self._targets:
            prune.remove(layer, name)     # bake the mask in: plain weights with zeros
        return module


def measure(module: Any, example: tuple[Any, ...]) -> dict[str, Any]:
    """Parameters, MACs (torch-pruning's counter) and the share of exactly-zero weights."""
    import torch
    import torch_pruning as tp

    with torch.no_grad():
        macs, params = tp.utils.count_ops_and_params(module, example)
    weights = [p for n, p in module.named_parameters() if n.endswith("weight")]
    zeros = sum(int((p == 0).sum()) for p in weights)
    return {"params": int(params), "macs": int(macs),
            "sparsity": round(zeros / max(1, sum(p.numel() for p in weights)), 4)}


def save_pruned(module: Any, folder: Path) -> None:
    """Weights-only state dict + the layer shape attributes pruning changed."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    torch.save(module.state_dict(), folder / "pruned_weights.pt")
    shapes = {name: {a: getattr(m, a) for a in SHAPE_ATTRS if isinstance(getattr(m, a, None), int)}
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
