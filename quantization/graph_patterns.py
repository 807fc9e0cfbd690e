"""Rewrites of a captured graph into the single ops a converter knows, before quantization, and the metadata
a quantizer's annotation reads made unambiguous.

Why: a hard-swish written out as `x * hardtanh(x + 3, 0, 6) / 6` (YOLOv5's `Hardswish`, every model that came
through ONNX from Paddle or Keras) is three float ops around a quantized `x`. litert-torch's layout pass turns the
quantized operand channels-last and leaves the float one as it was, and the conversion fails with "Attempting to
broadcast a dimension". `aten.hardswish` is one op every converter lowers, and it computes the same numbers."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import fx


def fuse_hardswish(gm: fx.GraphModule) -> int:
    """Replaces each written-out hard-swish in `gm` by `aten.hardswish`, in place; returns how many."""
    import torch

    aten = torch.ops.aten
    fused = 0
    for clip in list(gm.graph.nodes):
        if not _is_call(clip, aten.hardtanh.default) or not _bounds(clip, 0.0, 6.0):
            continue
        shift = clip.args[0]
        if not _is_call(shift, aten.add.Tensor, aten.add.Scalar) or len(shift.users) != 1:
            continue
        x, three = _operand_and_scalar(gm, shift)
        if x is None or not _close(three, 3.0) or len(clip.users) != 1:
            continue
        product = next(iter(clip.users))
        if not _is_call(product, aten.mul.Tensor) or set(product.args) != {x, clip} or len(product.users) != 1:
            continue
        scale = next(iter(product.users))
        if not _divides_by_six(gm, scale, product):
            continue
        with gm.graph.inserting_before(scale):
            swish = gm.graph.call_function(aten.hardswish.default, (x,))
        # its value and module path, not the mul's source-function record (quantizers would annotate it as a mul)
        swish.meta = {k: v for k, v in scale.meta.items() if k in ("val", "tensor_meta", "nn_module_stack",
                                                                     "stack_trace")}
        scale.replace_all_uses_with(swish)
        for node in (scale, product, clip, shift):
            gm.graph.erase_node(node)
        fused += 1
    if fused:
        gm.graph.eliminate_dead_code()
        gm.recompile()
    return fused


def _is_call(node: object, *targets: object) -> bool:
    return getattr(node, "op", None) == "call_function" and getattr(node, "target", None) in targets


def _bounds(clip: fx.Node, low: float, high: float) -> bool:
    args = tuple(clip.args[1:]) + tuple(clip.kwargs.get(k) for k in ("min_val", "max_val") if k in clip.kwargs)
    return len(args) == 2 and _close(args[0], low) and _close(args[1], high)


def _scalar(gm: fx.GraphModule, value: object) -> float | None:
    """A Python number, or a one-element constant tensor the graph reads as an attribute."""
    if isinstance(value, (int, float)):
        return float(value)
    if getattr(value, "op", None) == "get_attr":
        tensor = gm
        for part in str(value.target).split("."):
            tensor = getattr(tensor, part, None)
        if tensor is not None and hasattr(tensor, "numel") and tensor.numel() == 1:
            return float(tensor.reshape(()).item())
    return None


def _operand_and_scalar(gm: fx.GraphModule, node: fx.Node) -> tuple[fx.Node | None, float | None]:
    left, right = node.args[0], node.args[1]
    if (value := _scalar(gm, right)) is not None:
        return left, value
    if (value := _scalar(gm, left)) is not None and hasattr(right, "op"):
        return right, value
    return None, None


def _divides_by_six(gm: fx.GraphModule, node: fx.Node, product: fx.Node) -> bool:
    import torch

    aten = torch.ops.aten
    if _is_call(node, aten.div.Tensor, aten.div.Scalar) and node.args[0] is product:
        return _close(_scalar(gm, node.args[1]), 6.0)
    if _is_call(node, aten.mul.Tensor, aten.mul.Scalar):
        operand, value = _operand_and_scalar(gm, node)
        return operand is product and _close(value, 1 / 6)
    return False


def _close(value: object, expected: float) -> bool:
    return isinstance(value, float | int) and math.isclose(float(value), expected, rel_tol=1e-6, abs_tol=1e-7)


def split_elementwise_partitions(gm: fx.GraphModule) -> int:
    """Gives each add / mul node its own source partition (in place); returns how many nodes were renamed.

    Why: PT2E annotators take `partition.output_nodes[0]`, and torch builds `output_nodes` from a set. Where
    several adds or muls share a partition name (`torch_fn` names are local to a module: onnx2torch's SE blocks
    and hard-sigmoids repeat `mul_2`), which of them got annotated changed from run to run, and with it the int8
    file (litert-torch's quantizer on PP-OCR's classifier: two captures of the same model gave different numbers)."""
    import operator

    import torch

    functions = {operator.add, operator.mul, operator.iadd, operator.imul, torch.add, torch.mul}
    names = {"add", "mul", "iadd", "imul", "add_", "mul_"}
    groups: dict[tuple[str, str, object], list[fx.Node]] = {}
    for node in gm.graph.nodes:
        if node.op != "call_function":
            continue
        stack, torch_fn = node.meta.get("source_fn_stack"), node.meta.get("torch_fn")
        if stack and stack[-1][1] in functions:
            groups.setdefault(("source_fn_stack", stack[-1][0], stack[-1][1]), []).append(node)
        elif not stack and torch_fn and str(torch_fn[1]).split(".")[-1] in names:   # keyed as torch keys it
            groups.setdefault(("torch_fn", torch_fn[0], str(torch_fn[1]).split(".")[-1]), []).append(node)
    renamed = 0
    for (key, name, _), nodes in groups.items():
        if len(nodes) < 2:
            continue
        for node in nodes:
            unique = (f"{name}.{node.name}", node.meta[key][-1][1] if key == "source_fn_stack" else node.meta[key][1])
            node.meta[key] = [*node.meta[key][:-1], unique] if key == "source_fn_stack" else unique
            renamed += 1
    return renamed
