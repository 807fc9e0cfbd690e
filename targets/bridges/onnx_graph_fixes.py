"""Rewrites onnx2torch graphs so torch.export and the XNNPACK quantizer accept them.

onnx2torch reproduces ONNX's runtime shape logic (Shape -> Gather -> Concat -> Reshape), which torch.export
rejects as data-dependent; with fixed input shapes every reshape has one known result, so it becomes a
plain `reshape` to that shape. ONNX Pad (opset >= 11) takes its pads as a tensor, which onnx2torch reads with
`.tolist()` at run time (unbacked symbols for torch.export: Keras ZeroPadding2D before strided depthwise convs);
where that tensor is a constant, the pad becomes a fixed `F.pad`. MatMul + Add with constant operands (how
SavedModel graphs express Dense layers) becomes `nn.Linear`, the pattern the quantizer annotates. A per-channel
constant Mul / Add right after a convolution (tf2onnx leaves the BatchNorm after a depthwise conv unfolded) is
folded into the convolution's weight and bias: left apart, int8 quantizes the conv output per tensor before the
per-channel scale, which wrecks the channels the BatchNorm amplifies.
"""
from __future__ import annotations

import operator
from collections.abc import Callable

import torch
from torch import fx, nn

SHAPE_MODULES = {"OnnxReshape", "OnnxFlatten", "OnnxSqueezeStaticAxes", "OnnxSqueezeDynamicAxes",
                 "OnnxUnsqueezeStaticAxes", "OnnxUnsqueezeDynamicAxes"}


def fix_for_export(gm: fx.GraphModule, example: torch.Tensor) -> fx.GraphModule:
    from torch.fx.passes.shape_prop import ShapeProp

    ShapeProp(gm).propagate(example)
    for node in list(gm.graph.nodes):
        if node.op == "call_module" and type(gm.get_submodule(node.target)).__name__ in SHAPE_MODULES:
            shape = tuple(node.meta["tensor_meta"].shape)
            with gm.graph.inserting_before(node):
                fixed = gm.graph.call_method("reshape", (node.args[0], shape))
            node.replace_all_uses_with(fixed)
            gm.graph.erase_node(node)
    _fix_pads(gm)
    _fold_channel_affine(gm)
    _fuse_linear(gm)
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def _constant(gm: fx.GraphModule, node: fx.node.Argument) -> torch.Tensor | None:
    """The tensor a `get_attr` node reads (its target is a dotted attribute path), else None."""
    if isinstance(node, fx.Node) and node.op == "get_attr":
        value = operator.attrgetter(str(node.target))(gm)
        return value if isinstance(value, torch.Tensor) else None
    return None


def _fix_pads(gm: fx.GraphModule) -> None:
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or type(gm.get_submodule(node.target)).__name__ != "OnnxPadDynamic":
            continue
        pads = _constant(gm, node.args[1]) if len(node.args) > 1 else None
        value = _constant(gm, node.args[2]) if len(node.args) > 2 and node.args[2] is not None else torch.zeros(())
        if pads is None or value is None or node.kwargs:
            continue        # computed pads stay as onnx2torch wrote them; torch.export names them if it refuses
        onnx_pads = [int(p) for p in pads.reshape(-1).tolist()]
        half = len(onnx_pads) // 2
        torch_pads = [p for dim in reversed(range(half)) for p in (onnx_pads[dim], onnx_pads[half + dim])]
        mode = gm.get_submodule(node.target).mode
        if mode != "constant":      # reflect / replicate pad only the trailing (spatial) dimensions
            if any(torch_pads[-4:]):
                continue
            torch_pads = torch_pads[:-4]
        options = {"mode": mode}
        if mode == "constant":
            options["value"] = float(value.reshape(-1)[0]) if value.numel() else 0.0
        with gm.graph.inserting_before(node):
            fixed = gm.graph.call_function(torch.nn.functional.pad, (node.args[0], torch_pads), options)
        node.replace_all_uses_with(fixed)
        gm.graph.erase_node(node)


def _fold_channel_affine(gm: fx.GraphModule) -> None:
    for node in list(gm.graph.nodes):
        conv = gm.get_submodule(node.target) if node.op == "call_module" else None
        if not isinstance(conv, nn.Conv2d) or sum(n.target == node.target for n in gm.graph.nodes) > 1:
            continue
        while len(node.users) == 1:
            (user,) = node.users
            op = _math_op(gm, user)
            if op not in (torch.mul, torch.add) or len(user.args) != 2:
                break
            value = _constant(gm, user.args[1] if user.args[0] is node else user.args[0])
            channels = conv.out_channels
            if value is None or value.numel() not in (1, channels) or value.dim() > 4 or \
                    (value.numel() == channels and channels > 1 and tuple(value.shape[-3:]) != (channels, 1, 1)):
                break
            per_channel = value.reshape(-1).expand(channels).to(conv.weight.dtype)
            with torch.no_grad():
                if conv.bias is None:
                    conv.bias = nn.Parameter(torch.zeros(channels, dtype=conv.weight.dtype))
                if op is torch.mul:
                    conv.weight.mul_(per_channel.reshape(-1, 1, 1, 1))
                    conv.bias.mul_(per_channel)
                else:
                    conv.bias.add_(per_channel)
            user.replace_all_uses_with(node)
            gm.graph.erase_node(user)


def _math_op(gm: fx.GraphModule, node: fx.Node) -> Callable[..., torch.Tensor] | None:
    from onnx2torch.node_converters.binary_math_operations import OnnxBinaryMathOperation

    if node.op != "call_module":
        return None
    module = gm.get_submodule(str(node.target))
    if not isinstance(module, OnnxBinaryMathOperation) or module.broadcast == 1:
        return None     # old-style (opset < 7) axis broadcasting is left alone
    return module.math_op_function


def _fuse_linear(gm: fx.GraphModule) -> None:
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or type(gm.get_submodule(node.target)).__name__ != "OnnxMatMul":
            continue
        weight = _constant(gm, node.args[1])
        if weight is None or weight.dim() != 2 or len(node.users) != 1:
            continue
        (add,) = node.users
        bias = None
        if add.op == "call_module" and _is_add(gm.get_submodule(add.target)):
            other = add.args[1] if add.args[0] is node else add.args[0]
            bias = _constant(gm, other)
        linear = nn.Linear(weight.shape[0], weight.shape[1], bias=bias is not None)
        with torch.no_grad():
            linear.weight.copy_(weight.t())
            if bias is not None:
                linear.bias.copy_(bias.reshape(-1))
        name = f"linear_{len([n for n, _ in gm.named_children() if n.startswith('linear_')])}"
        gm.add_submodule(name, linear)
        replaced = add if bias is not None else node
        with gm.graph.inserting_before(replaced):
            new = gm.graph.call_module(name, (node.args[0],))
        replaced.replace_all_uses_with(new)
        if bias is not None:
            gm.graph.erase_node(add)
        gm.graph.erase_node(node)


def _is_add(module: nn.Module) -> bool:
    from onnx2torch.node_converters.binary_math_operations import OnnxBinaryMathOperation

    return isinstance(module, OnnxBinaryMathOperation) and module.math_op_function is torch.add
