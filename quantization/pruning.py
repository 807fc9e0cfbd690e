"""Pruning for PyTorch sources, applied once in the source stage before every export.

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
from edge_pipeline.plugins import DataBundle, Model

SHAPE_ATTRS = ("in_channels", "out_channels", "groups", "in_features", "out_features", "num_features")


class PruneBase:
    name: ClassVar[str]
    kind: ClassVar[str]
    frameworks: ClassVar[tuple[str, ...]] = ("torch",)
    needs_calibration: ClassVar[bool] = False
    distributions: ClassVar[tuple[str, ...]] = ("torch", "torch-pruning")

    def __init__(self, amount: float = 0.5, fine_tune: Any = None):
        if not 0 < amount < 1:
            raise InputError(f"prune amount must be between 0 and 1 (exclusive), got {amount}")
        self.amount, self.fine_tune = amount, fine_tune

    def apply(self, model: Model, data: DataBundle) -> Model:
        import torch

        if model.framework != "torch":
            raise InputError(f"{self.kind} pruning is implemented for PyTorch models; this one is {model.framework}")
        module = model.module
        if isinstance(module, torch.fx.GraphModule):
            raise InputError("pruning needs the model's nn.Module (a factory), not a torch.export .pt2 graph")
        before = measure(module, model.example_inputs)
        module = self._prune(module, model.example_inputs)
        if self.fine_tune is not None:
            try:
                tuned = self.fine_tune(module.train())
            except EdgepipeError:
                raise
            except Exception as exc:
                raise StageFailed(f"the fine-tune callback raised {type(exc).__name__}: {exc}") from exc
            module = tuned if tuned is not None else module
        module = module.eval()
        after = measure(module, model.example_inputs)
        stats = {"kind": self.kind, "amount": self.amount, "before": before, "after": after,
                 "fine_tuned": self.fine_tune is not None}
        return replace(model, module=module, provenance={**model.provenance, "pruning": stats})


    @staticmethod
    def save(module: Any, folder: Path) -> None:
        save_pruned(module, folder)

    @staticmethod
    def restore(model: Model, folder: Path) -> Model:
        return load_pruned(model, folder)


class StructuredPrune(PruneBase):
    name, kind = "prune-structured", "structured"

    def _prune(self, module: Any, example: tuple[Any, ...]) -> Any:
        import torch
        import torch_pruning as tp

        final = [m for m in module.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))][-1:]
        pruner = tp.pruner.MetaPruner(module, example, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                      pruning_ratio=self.amount, ignored_layers=final)
        pruner.step()
        return module


class UnstructuredPrune(PruneBase):
    name, kind = "prune-unstructured", "unstructured"
    distributions = ("torch",)

    def _prune(self, module: Any, example: tuple[Any, ...]) -> Any:
        import torch
        from torch.nn.utils import prune

        targets = [(m, "weight") for m in module.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=self.amount)
        for layer, name in targets:
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
