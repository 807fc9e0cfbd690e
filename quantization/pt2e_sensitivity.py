"""One-pass per-layer ranking for PT2E int8, on the converted (reference q/dq) graph that ships.

The captured float graph runs once per batch. Then, for every quantizable layer, only that layer's piece of the
converted graph is evaluated: from its input quantizer through its compute node, fused ops (bn folded, relu) and
output quantizer, fed with the *float* value that reaches it (nodes are matched by name: convert_pt2e keeps the
names of the nodes it does not add). Its output is compared with the float graph's: the layer is charged exactly
what its own quantizers and int8 weights do to a clean input ("only this layer int8", with the shipped model's
calibrated scales, at the cost of one extra layer evaluation instead of one re-quantization)."""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge_pipeline.tensors import Tensors

from .sensitivity import LayerErrors, LayerRow, for_batches, torch_inputs

if TYPE_CHECKING:
    from torch import fx

NUMERICS = "PT2E reference q/dq numerics of the shipped converted graph, torch.fx"
WHAT = ("per-channel SQNR of each quantizable layer's output with only that layer int8 (its input quantizer, int8 "
        "weights and output quantizer, the shipped model's calibrated scales) fed the float model's activations, vs "
        "the float model's output of that layer")


@dataclass(frozen=True)
class Piece:
    """One layer's nodes in the converted graph, in graph order, and where the float graph meets them."""

    nodes: tuple[fx.Node, ...]
    leaves: frozenset[str]    # float-graph values the piece reads
    float_out: str            # the float graph's output of the layer
    out: fx.Node              # the piece's (dequantized) output
    axis: int                 # channel axis of that output


def rank_layers(captured: fx.GraphModule, converted: fx.GraphModule, groups: dict[str, set[str]], inputs: Tensors,
                batch: int) -> list[LayerRow]:
    pieces = {layer: _piece(captured, converted, members) for layer, members in groups.items()}
    found = {layer: p for layer, p in pieces.items() if p is not None}
    wanted = {name for p in found.values() for name in (p.float_out, *p.leaves)}
    errors = LayerErrors()

    def run(x: Tensors) -> None:
        reference = _record(captured, wanted, x)
        for layer, p in found.items():
            errors.add(layer, reference[p.float_out], _evaluate(converted, p, reference), p.axis)

    for_batches(inputs, batch, run)
    return errors.rows({layer: [layer] for layer in found})


def _piece(captured: fx.GraphModule, converted: fx.GraphModule, members: set[str]) -> Piece | None:
    """The converted-graph nodes of one layer (input q/dq -> compute -> fused ops -> output q/dq) and the float
    values they read (leaves); None when the graphs do not line up."""
    ordered = [n for n in captured.graph.nodes if n.name in members]
    quant_nodes = {n.name: n for n in converted.graph.nodes}
    float_nodes = {n.name for n in captured.graph.nodes}
    present = [quant_nodes[n.name] for n in ordered if n.name in quant_nodes]   # bn is folded away by prepare_pt2e
    if not present:
        return None
    out = present[-1]
    for user in out.users:
        if _is(user, "quantize_per") and not _is(user, "dequantize"):
            out = next((u for u in user.users if _is(u, "dequantize_per")), out)
            break
    nodes: set[fx.Node] = set()
    leaves: set[fx.Node] = set()
    stack = [out]
    while stack:
        node = stack.pop()
        if node in nodes or node in leaves:
            continue
        if node.op == "call_function" and (node.name in members or _is(node, "quantize_per")):
            nodes.add(node)
            stack += node.all_input_nodes
        elif node.op == "get_attr":
            continue
        elif node.name in float_nodes:
            leaves.add(node)
        else:
            return None
    compute = next((n for n in ordered if any(k in str(n.target) for k in ("conv", "linear", "mm"))), ordered[0])
    return Piece(tuple(n for n in converted.graph.nodes if n in nodes), frozenset(n.name for n in leaves),
                 ordered[-1].name, out, 1 if "conv" in str(compute.target) else -1)


def _evaluate(converted: fx.GraphModule, piece: Piece, reference: dict[str, object]) -> object:
    import torch
    from torch.fx.node import map_arg

    env: dict[fx.Node, object] = {}

    def value(node: fx.Node) -> object:
        if node in env:
            return env[node]
        if node.op == "get_attr":   # a constant of the converted graph: its target is a dotted attribute path
            return operator.attrgetter(str(node.target))(converted)
        return reference[node.name]

    with torch.no_grad():
        for node in piece.nodes:
            env[node] = node.target(*map_arg(node.args, value), **map_arg(node.kwargs, value))
    return env[piece.out]


def _is(node: fx.Node, kind: str) -> bool:
    return node.op == "call_function" and kind in str(node.target)


def _record(graph_module: fx.GraphModule, names: set[str], x: Tensors) -> dict[str, object]:
    import torch

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node: fx.Node) -> object:
            value = super().run_node(node)
            if node.name in names:
                seen[node.name] = value
            return value

    seen: dict[str, object] = {}
    with torch.no_grad():
        Recorder(graph_module).run(*torch_inputs(x))
    return seen
