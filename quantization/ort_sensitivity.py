"""One-session per-layer ranking for ORT static QDQ models.

For every quantizable layer, its piece of the QDQ model (input QuantizeLinear/DequantizeLinear -> Conv/Gemm/MatMul
with its weight and bias DequantizeLinear -> output QuantizeLinear/DequantizeLinear) is copied, renamed, into the
float model and fed the float model's own tensors. One ONNX Runtime session over that combined model gives, per
batch, each layer's float output and its "only this layer int8" output (with the shipped model's calibrated
scales): no re-quantization per layer, one run per batch."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge_pipeline.tensors import Tensors, order_inputs
from targets.sources.onnx_source import onnx_input_specs

from .sensitivity import LayerErrors, LayerRow, for_batches

if TYPE_CHECKING:
    import onnx

NUMERICS = "ONNX Runtime (CPU), the QDQ model's own Q/DQ nodes and scales"
WHAT = ("per-channel SQNR of each quantizable layer's output with only that layer int8 (its input QuantizeLinear, "
        "int8 weights and output QuantizeLinear, the shipped QDQ model's scales) fed the float model's tensors, vs "
        "the float model's output of that layer")
QDQ = ("QuantizeLinear", "DequantizeLinear")


@dataclass(frozen=True)
class Piece:
    """A weighted node's QDQ piece copied into the float model: the float output it is compared with, its own
    (renamed) output, and the channel axis."""

    float_out: str
    out: str
    axis: int


def rank_layers(float_path: Path, quantized_path: Path, layers: dict[str, list[str]], inputs: Tensors,
                batch: int, workdir: Path) -> list[LayerRow]:
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(float_path))
    quantized_model = onnx.load(str(quantized_path))
    quantized = quantized_model.graph
    pieces: dict[str, list[Piece]] = {}
    for layer, node_names in layers.items():
        copied = [_copy_piece(model, quantized, name, f"{len(pieces)}_{i}") for i, name in enumerate(node_names)]
        found = [piece for piece in copied if piece is not None]
        if found and len(found) == len(copied):
            pieces[layer] = found
    _merge_opsets(model, quantized_model)
    outputs = {o.name for o in model.graph.output}
    for piece in (p for found in pieces.values() for p in found):
        for name in (piece.float_out, piece.out):
            if name not in outputs:
                model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
                outputs.add(name)
    combined = workdir / "ranking.onnx"
    onnx.save(model, str(combined))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(combined), options, providers=["CPUExecutionProvider"])
    specs = onnx_input_specs(session)
    names = sorted(outputs)
    errors = LayerErrors()

    def run(x: Tensors) -> None:
        values = dict(zip(names, session.run(names, order_inputs(specs, x).as_dict())))
        for layer, found in pieces.items():
            for i, piece in enumerate(found):
                errors.add(f"{layer}#{i}", values[piece.float_out], values[piece.out], piece.axis)

    for_batches(inputs, batch, run)
    return errors.rows({layer: [f"{layer}#{i}" for i in range(len(found))] for layer, found in pieces.items()})


def _copy_piece(model: onnx.ModelProto, quantized: onnx.GraphProto, node_name: str, tag: str) -> Piece | None:
    """Appends the renamed piece of `quantized` around node `node_name` to `model`; None if it cannot."""
    producers = {out: node for node in quantized.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in quantized.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    weighted = next((n for n in quantized.node if n.name == node_name), None)
    if weighted is None:
        return None
    float_tensors = {t for n in model.graph.node for t in n.output} | {i.name for i in model.graph.input}
    out = weighted.output[0]
    after = consumers.get(out, [])
    float_out = out
    if len(after) == 1 and after[0].op_type == "QuantizeLinear":
        dq = consumers.get(after[0].output[0], [])
        if len(dq) == 1 and dq[0].op_type == "DequantizeLinear":
            out = dq[0].output[0]
            float_out = float_out if float_out in float_tensors else out   # the graph output keeps its own name
    if float_out not in float_tensors:
        return None
    piece, stack, leaves = [], [producers.get(out)], set()
    while stack:
        node = stack.pop()
        if node is None or node in piece:
            continue
        piece.append(node)
        for name in node.input:
            source = producers.get(name)
            if source is not None and (source.op_type in QDQ or source is weighted):
                stack.append(source)
            elif name:
                leaves.add(name)
    initializers = {i.name: i for i in quantized.initializer}
    inside = {t for node in piece for t in node.output}
    rename = {t: f"{t}__only_{tag}" for t in inside}
    for name in leaves:
        if name in initializers:
            copy = type(initializers[name])()
            copy.CopyFrom(initializers[name])
            copy.name = rename[name] = f"{name}__q_{tag}"
            model.graph.initializer.append(copy)
        elif name not in float_tensors:
            return None
    order = {id(n): i for i, n in enumerate(quantized.node)}
    for node in sorted(piece, key=lambda n: order[id(n)]):
        copy = type(node)()
        copy.CopyFrom(node)
        copy.name = f"{node.name}__only_{tag}"
        copy.input[:] = [rename.get(name, name) for name in node.input]
        copy.output[:] = [rename[name] for name in node.output]
        model.graph.node.append(copy)
    return Piece(float_out, rename[out], 1 if weighted.op_type.startswith("Conv") else -1)


def _merge_opsets(model: onnx.ModelProto, quantized: onnx.ModelProto) -> None:
    """The combined model imports each domain at the higher of the two models' versions (QDQ needs opset >= 13)."""
    versions = {o.domain: o.version for o in model.opset_import}
    for opset in quantized.opset_import:
        if opset.domain not in versions:
            model.opset_import.append(opset)
        elif opset.version > versions[opset.domain]:
            next(o for o in model.opset_import if o.domain == opset.domain).version = opset.version
