"""The fallback's search space for PT2E backends: every operation the backend's quantizer would quantize, in
regions that quantize together.

A region is a weighted layer (conv, linear) with the ops fused into it (batch norm, ReLU), plus the
quantized ops on its input side that no other layer owns: the residual add it reads, a pooling, a concatenation,
a hardswish. Whatever no layer reads (a final add or pooling before the output) joins the nearest layer before
it. So keeping every region float leaves nothing quantized: the model is the float model, exactly, and the
fallback can always reach float accuracy (the weighted layers alone could not: residual adds and activation
quantizers stayed int8, and MobileNetV2 lost 13.6 pt with all 53 layers float)."""
from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import fx
    from torchao.quantization.pt2e.quantizer import Quantizer

FUSED_OPS = ("batch_norm", "getitem", "relu", "hardtanh", "clamp")   # one int8 pattern with the conv/linear before them


def quantized_regions(captured: fx.GraphModule, layers: list[str], quantizer: Quantizer) -> dict[str, set[str]]:
    """Region name (its layer's, or an op's own where no layer is near) -> the graph nodes it keeps float."""
    regions = layer_groups(captured, layers)
    owner = {name: layer for layer, members in regions.items() for name in members}
    nodes = {n.name: n for n in captured.graph.nodes}
    for name in annotated_nodes(captured, quantizer):
        if name in owner or name not in nodes:
            continue
        node = nodes[name]
        layer = _nearest(node, lambda n: n.users, owner) or _nearest(node, lambda n: n.all_input_nodes, owner)
        region = layer or name
        regions.setdefault(region, set()).add(name)
        owner[name] = region
    return regions


def layer_groups(captured: fx.GraphModule, layers: list[str]) -> dict[str, set[str]]:
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


def annotated_nodes(captured: fx.GraphModule, quantizer: Quantizer) -> list[str]:
    """The call_function nodes `quantizer` annotates for quantization (on a copy), in graph order."""
    graph = quantizer.transform_for_annotation(copy.deepcopy(captured))
    quantizer.annotate(graph)
    return [n.name for n in graph.graph.nodes if n.op == "call_function" and "quantization_annotation" in n.meta]


def weight_share(module: torch.nn.Module, regions: Mapping[str, set[str]]) -> Callable[[Sequence[str]], float]:
    """The share of the model's weighted-layer parameters that the named regions hold (what staying float costs
    in size)."""
    sizes = {name: sum(p.numel() for p in module.get_submodule(name).parameters()) for name in regions
             if _is_submodule(module, name)}
    total = sum(sizes.values()) or 1

    def share(kept: Sequence[str]) -> float:
        return round(sum(sizes.get(name, 0) for name in kept) / total, 4)
    return share


def _nearest(start: fx.Node, step: Callable[[fx.Node], Iterable[fx.Node]], owner: Mapping[str, str]) -> str | None:
    """The region of the nearest owned node reached from `start` by `step` (users: downstream; inputs: upstream)."""
    queue, seen = deque(step(start)), {start.name}
    while queue:
        node = queue.popleft()
        if node.name in seen:
            continue
        seen.add(node.name)
        if node.name in owner:
            return owner[node.name]
        queue.extend(step(node))
    return None


def _is_submodule(module: torch.nn.Module, name: str) -> bool:
    try:
        module.get_submodule(name)
    except AttributeError:
        return False
    return True


def _innermost(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0].replace("L['self'].", "") if stack else ""
