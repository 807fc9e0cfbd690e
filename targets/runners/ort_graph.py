"""Per-node figures of an ONNX graph for Model Explorer's overlays: which node of the shipped graph each node ONNX
Runtime actually ran came from, what each node computes in, and how far a quantized model's tensors are from the
float model's.

Node ids are the ONNX node names, as Model Explorer's ONNX adapter names them. ONNX Runtime fuses and re-lays
nodes before it runs them (`Conv`+`Relu` become one `FusedConv`, NCHWc reorders appear), so its profiler names
nodes the shipped file does not have: each is traced to the shipped node whose output tensor it produces, or,
for an internal node (a reorder), to the node its output feeds.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_pipeline.numbers import SignalNoise

if TYPE_CHECKING:
    import onnx

CONVERTERS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")
INTEGER_OPS = ("ConvInteger", "MatMulInteger", "QGemm", "QAttention", "DynamicQuantizeMatMul", "MatMulNBits")
MAX_TRACED_BYTES = 1 << 30      # a model whose every tensor is an output must still serialize (protobuf: 2 GB)


def shipped_nodes(shipped: onnx.ModelProto, optimized: onnx.ModelProto) -> dict[str, str]:
    """Optimized node name -> the shipped node it came from (absent: none could be traced). ONNX Runtime names a
    node it rewrote after the original (`fused X`, `X_token_13`, `<tensor>_nchwc`); a node with no such name is
    traced by the tensor it outputs, else by the node it feeds. A quantizer's time goes to the node it quantizes."""
    nodes = {node.name for node in shipped.graph.node}
    producers = {out: node for node in shipped.graph.node for out in node.output if out}

    def computing(node: onnx.NodeProto) -> str:
        if node.op_type == "QuantizeLinear" and node.input and node.input[0] in producers:
            return producers[node.input[0]].name
        return node.name

    def by_name(name: str) -> str | None:
        base = re.sub(r"(_token_\d+)+$", "", name.removeprefix("fused ")).removesuffix("_nchwc")
        if base in nodes:
            return base
        return computing(producers[base]) if base in producers else None

    consumers: dict[str, list[str]] = {}
    for node in optimized.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.name)
    found: dict[str, str] = {}
    for node in reversed(optimized.graph.node):        # consumers before producers
        hit = by_name(node.name) or next((computing(producers[o]) for o in node.output if o in producers), None)
        if hit is None:
            hit = next((found[c] for out in node.output for c in consumers.get(out, ()) if c in found), None)
        if hit is not None:
            found[node.name] = hit
    return found


def node_precisions(path: Path) -> dict[str, str]:
    """'int8' for integer kernels and for nodes whose activations all arrive dequantized (QDQ: ONNX Runtime runs
    them as integer kernels), 'int8 weights' where only constants are quantized, 'convert' for (de)quantizers."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    constants = {i.name for i in graph.initializer}
    constants |= {out for node in graph.node if node.op_type == "Constant" for out in node.output}
    dequantized = {out: node for node in graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    weights = {out for out, node in dequantized.items() if node.input and node.input[0] in constants}
    found: dict[str, str] = {}
    for node in graph.node:
        if node.op_type in CONVERTERS:
            found[node.name] = "convert"
        elif node.op_type.startswith("QLinear") or node.op_type in INTEGER_OPS:
            found[node.name] = "int8"
        else:
            flowing = [i for i in node.input if i and i not in constants and i not in weights]
            if flowing and all(i in dequantized for i in flowing):
                found[node.name] = "int8"
            elif any(i in weights for i in node.input):
                found[node.name] = "int8 weights"
            else:
                found[node.name] = "float"
    return found


def node_errors(path: Path, reference: Path, calls: list[list[np.ndarray]]) -> dict[str, float]:
    """SQNR (dB) of each node's first output against the float model's tensor of the same name. Both graphs run
    unoptimized with every tensor an output, so each tensor keeps its name (a QDQ node computes in float
    between its dequantizer and quantizer, as the integer kernel ONNX Runtime fuses it into rounds)."""
    import onnx

    shipped = onnx.load(str(path))
    if shipped.ByteSize() > MAX_TRACED_BYTES:
        return {}
    floating = onnx.load(str(reference))
    float_outputs = {out for node in floating.graph.node for out in node.output if out}
    seen = _as_consumed(shipped.graph)
    pairs = {node.name: node.output[0] for node in shipped.graph.node
             if node.op_type not in CONVERTERS and node.output and node.output[0] in float_outputs}
    q_run = _every_tensor(shipped, {seen.get(t, t) for t in pairs.values()})
    f_run = _every_tensor(floating, set(pairs.values()))
    totals = {node: SignalNoise() for node in pairs}
    for call in calls:
        mine, theirs = q_run(call), f_run(call)
        for node, tensor in pairs.items():
            got = mine.get(seen.get(tensor, tensor))
            if got is not None and tensor in theirs and got.shape == theirs[tensor].shape:
                totals[node].add(theirs[tensor], got)
    return {node: db for node, total in totals.items() if (db := total.sqnr_db()) is not None}


def _as_consumed(graph: onnx.GraphProto) -> dict[str, str]:
    """Tensor -> the tensor the next node reads for it: its value after a QuantizeLinear -> DequantizeLinear pair
    (rounded, and clipped: a ReLU folded into the quantizer exists only there)."""
    quantizers = {node.input[0]: node.output[0] for node in graph.node if node.op_type == "QuantizeLinear"}
    dequantizers = {node.input[0]: node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    return {tensor: dequantizers[q] for tensor, q in quantizers.items() if q in dequantizers}


def _every_tensor(model: onnx.ModelProto, wanted: set[str]) -> Callable[[list[np.ndarray]], dict[str, np.ndarray]]:
    import onnx
    import onnxruntime as ort

    present = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=name) for name in sorted(wanted - present))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]

    def run(call: list[np.ndarray]) -> dict[str, np.ndarray]:
        values = session.run(None, dict(zip(inputs, call, strict=True)))
        return {name: np.asarray(v) for name, v in zip(outputs, values) if isinstance(v, np.ndarray)}

    return run
