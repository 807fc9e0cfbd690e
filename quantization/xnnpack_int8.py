"""Static int8 for ExecuTorch: XNNPACKQuantizer, symmetric per-channel weights, with a per-layer sensitivity
table and, under an accuracy budget, float fallback for the most sensitive layers."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from edge_pipeline.plugins import DataBundle, Model

from .pt2e import capture_for_quantization, quantize_static
from .sensitivity import SENSITIVITY_METHOD, fallback, layer_sensitivity, quantizable_layers


class XnnpackInt8:
    name: ClassVar[str] = "xnnpack-int8"
    frameworks: ClassVar[tuple[str, ...]] = ("torch",)
    needs_calibration: ClassVar[bool] = True
    accuracy_budget: ClassVar[bool] = True    # reads `max_accuracy_drop` from model.extras for fallback

    def apply(self, model: Model, data: DataBundle) -> Model:
        captured = capture_for_quantization(model)
        groups = layer_groups(captured, quantizable_layers(model.module))

        def quantize(only: str | None = None, skip: frozenset[str] = frozenset()) -> Any:
            if only is not None:
                keep = groups[only]   # constants (weights, BN folded into them) follow their compute node
                quantizer = _quantizer(lambda node: node.op != "call_function" or node.name in keep)
            else:
                dropped = set().union(*(groups[name] for name in skip))
                quantizer = _quantizer(lambda node: node.op != "call_function" or node.name not in dropped)
            return quantize_static(model, quantizer, data, fold_quantize=True, captured=captured)

        quantized = quantize()
        ranking = layer_sensitivity(model.module, lambda name: quantize(only=name).module, data, list(groups))
        notes: dict[str, Any] = {"sensitivity": {"method": SENSITIVITY_METHOD, "layers": ranking}}
        budget = model.extras.get("max_accuracy_drop")
        if budget is not None and ranking:
            converted, notes["fallback"] = fallback(
                model.module, quantized.module, lambda skip: quantize(skip=frozenset(skip)).module, data, ranking,
                float(budget))
            if notes["fallback"]["kept_float"]:
                quantized = replace(quantized, module=converted)
        quantization = {**quantized.provenance["quantization"], **notes}
        return replace(quantized, provenance={**quantized.provenance, "quantization": quantization})


def layer_groups(captured: Any, layers: list[str]) -> dict[str, set[str]]:
    """Graph nodes of each source layer, plus the activations fused with it (conv+relu is one int8 pattern)."""
    groups = {}
    for layer in layers:
        members = {n.name for n in captured.graph.nodes if n.op == "call_function" and _innermost(n) == layer}
        for node in captured.graph.nodes:   # topological order: conv -> batch_norm -> relu chains close in one pass
            if node.name in members:
                members |= {u.name for u in node.users if any(k in str(u.target) for k in FUSED_OPS)}
        if members:
            groups[layer] = members
    return groups


FUSED_OPS = ("batch_norm", "getitem", "relu", "hardtanh", "clamp")   # one int8 pattern with the conv/linear before them


def _innermost(node: Any) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0].replace("L['self'].", "") if stack else ""


def _quantizer(node_filter: Any) -> Any:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer, get_symmetric_quantization_config)

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    return quantizer.set_filter_function(node_filter)
