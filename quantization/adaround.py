"""AdaRound with bias correction on a PT2E graph, written here: neither NNCF nor torchao offers weight-rounding
optimisation for torch.fx graphs (AIMET has it for its own simulation graphs only, and would replace this torch).

Layer by layer in graph order, each weighted layer's integers are re-picked (round up or down, AdaRound's rectified
sigmoid annealed to hard choices) so that its output, fed the *quantized* model's input, matches the float model's
output on the calibration data; then the mean difference left per output channel is added to its bias. Feeding the
quantized input (asymmetric reconstruction) lets each layer absorb part of the error quantized activations upstream
put on it, which is where most of a MobileNet-class network's int8 loss comes from.

The quantizer's grid is kept: each channel's largest-magnitude weight is left exactly as it was, so the observers'
scales are unchanged and the backend lowers the result exactly as before; only the float weights and biases that
`convert_pt2e` rounds are rewritten."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import fx

ZETA, GAMMA = 1.1, -0.1          # AdaRound's rectified-sigmoid stretch
REGULARISATION = 0.01
SAMPLES_PER_STEP = 16
MAX_SAMPLES = 32                 # calibration samples each layer is fitted on (each layer re-runs the graph on them)


@dataclass(frozen=True)
class WeightedLayer:
    node: str           # the compute node (conv / linear), same name in the float and the q/dq graph
    weight: str         # get_attr target of its float weight
    bias: str | None    # get_attr target of its float bias, if it has one
    scale: torch.Tensor
    zero_point: torch.Tensor
    axis: int
    qmin: int
    qmax: int


@dataclass(frozen=True)
class RoundingNote:
    layers: int
    iterations: int
    error_before: float      # mean over layers of the output MSE relative to the float output's power
    error_after: float

    def as_dict(self) -> dict[str, object]:
        return {"algorithm": "adaround + bias correction (edgepipe, on the PT2E graph)", "layers": self.layers,
                "iterations_per_layer": self.iterations, "relative_output_error_before": round(self.error_before, 6),
                "relative_output_error_after": round(self.error_after, 6)}


def adaround(prepared: fx.GraphModule, inputs: list[tuple[torch.Tensor, ...]], iterations: int = 400) -> RoundingNote:
    """Rewrites `prepared`'s (calibrated) float weights and biases in place; `inputs`: calibration batches."""
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    floating = _without_observers(copy.deepcopy(prepared))     # the float model
    inputs = _first_samples(inputs, MAX_SAMPLES)
    simulated = convert_pt2e(copy.deepcopy(prepared), fold_quantize=False)   # the q/dq model, weights as floats
    layers = weighted_layers(simulated)
    before, after = [], []
    for layer in layers:
        target = record(floating, inputs, layer.node)[0]
        _, args = record(simulated, inputs, layer.node)
        node = next(n for n in simulated.graph.nodes if n.name == layer.node)
        x, rest = args[0], args[2:]
        weight = _attr(simulated, layer.weight).detach()
        bias = _attr(simulated, layer.bias).detach() if layer.bias else None
        integers, fixed = _optimise(node, x, rest, weight, bias, target, layer, iterations)
        with torch.no_grad():
            new_weight, bias, error = _corrected(node, x, rest, weight, bias, target, layer, integers, fixed)
        before.append(error[0])
        after.append(error[1])
        for module in (simulated, prepared):
            _set_attr(module, layer.weight, new_weight)
            if bias is not None and layer.bias:
                _set_attr(module, layer.bias, bias)
    mean = (lambda values: sum(values) / len(values)) if layers else (lambda _: 0.0)
    return RoundingNote(len(layers), iterations, mean(before), mean(after))


def _corrected(node: fx.Node, x: torch.Tensor, rest: list[Any], weight: torch.Tensor, bias: torch.Tensor | None,
               target: torch.Tensor, layer: WeightedLayer, integers: torch.Tensor, fixed: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor | None, tuple[float, float]]:
    """The rounded weight, the bias shifted by the mean output difference left per channel, and the relative
    output error before (nearest rounding) and after."""
    import torch

    new_weight = torch.where(fixed, weight, integers * _broadcast(layer.scale, weight, layer.axis))
    power = target.pow(2).mean().clamp_min(1e-12)
    before = float((_call(node, x, _fake_quant(weight, layer), rest) - target).pow(2).mean() / power)
    if bias is not None:
        output = _call(node, x, new_weight, rest, bias)
        bias = bias + (target - output).mean(dim=[d for d in range(output.dim()) if d != 1])
    after = float((_call(node, x, new_weight, rest, bias) - target).pow(2).mean() / power)
    return new_weight, bias, (before, after)


def _without_observers(prepared: fx.GraphModule) -> fx.GraphModule:
    """The calibrated graph with its observers made identities: the float model, without the cost (a histogram
    observer re-bins on every call) or the side effect of observing again."""
    import torch
    from torchao.quantization.pt2e import ObserverBase

    for name, module in list(prepared.named_children()):
        if isinstance(module, ObserverBase):
            setattr(prepared, name, torch.nn.Identity())
    return prepared


def _first_samples(inputs: list[tuple[torch.Tensor, ...]], limit: int) -> list[tuple[torch.Tensor, ...]]:
    kept, seen = [], 0
    for batch in inputs:
        if seen >= limit:
            break
        kept.append(batch)
        seen += len(batch[0]) if batch and batch[0].dim() else 1
    return kept


def weighted_layers(simulated: fx.GraphModule) -> list[WeightedLayer]:
    """Compute nodes whose second argument is a per-channel quantized weight (conv, linear), in graph order."""
    found = []
    for node in simulated.graph.nodes:
        if node.op != "call_function" or len(node.args) < 2:
            continue
        weight = _quantized_attr(simulated, node.args[1])
        if weight is None:
            continue
        bias_arg = node.args[2] if len(node.args) > 2 else None
        bias = _plain_or_quantized_attr(simulated, bias_arg)
        found.append(WeightedLayer(node.name, bias=bias, **weight))
    return found


def record(module: fx.GraphModule, inputs: list[tuple[torch.Tensor, ...]], name: str) -> tuple[Any, list[Any]]:
    """The named node's output and its argument values over every batch (tensors concatenated), running a copy of
    the graph cut at that node (generated code, not an interpreter: this runs once per layer and graph)."""
    import torch
    from torch import fx

    graph, env = fx.Graph(), {}
    for node in module.graph.nodes:
        env[node] = graph.node_copy(node, lambda n: env[n])
        if node.name == name:
            graph.output((env[node], *(env[a] for a in node.args if isinstance(a, fx.Node))))
            break
    cut = fx.GraphModule(module, graph)
    with torch.no_grad():
        runs = [cut(*batch) for batch in inputs]
    node = next(n for n in module.graph.nodes if n.name == name)
    given = iter(runs[0][1:])                         # weights, biases: the same in every batch
    args = [next(given) if isinstance(a, fx.Node) else a for a in node.args]
    args[0] = torch.cat([run[1] for run in runs])     # the layer's input, over every sample
    return torch.cat([run[0] for run in runs]), args


def _optimise(node: fx.Node, x: torch.Tensor, rest: list[Any], weight: torch.Tensor, bias: torch.Tensor | None,
              target: torch.Tensor, layer: WeightedLayer, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """AdaRound's soft rounding, annealed to hard integers; returns them and the mask of weights left as they were."""
    import torch

    scale = _broadcast(layer.scale, weight, layer.axis)
    scaled = weight / scale
    floor = torch.floor(scaled)
    extreme = weight.abs() == weight.abs().amax(dim=[d for d in range(weight.dim()) if d != layer.axis],
                                                 keepdim=True)
    rest_fraction = (scaled - floor).clamp(0.01, 0.99)
    v = (-torch.log((ZETA - GAMMA) / (rest_fraction - GAMMA) - 1)).requires_grad_(True)
    optimiser = torch.optim.Adam([v], lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    warmup = iterations // 5
    for step in range(iterations):
        pick = torch.randperm(len(x), generator=generator)[:SAMPLES_PER_STEP]
        soft = torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0, 1)
        candidate = torch.where(extreme, weight, (floor + soft).clamp(layer.qmin, layer.qmax) * scale)
        loss = (_call(node, x[pick], candidate, rest, bias) - target[pick]).pow(2).mean()
        if step >= warmup:
            beta = 20 + (2 - 20) * (step - warmup) / max(1, iterations - warmup)
            loss = loss + REGULARISATION * (1 - (2 * soft - 1).abs().pow(beta)).sum() / math.sqrt(soft.numel())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        hard = (floor + (v >= 0).to(floor.dtype)).clamp(layer.qmin, layer.qmax)
    return hard, extreme


def _call(node: fx.Node, x: torch.Tensor, weight: torch.Tensor, rest: list[Any],
          bias: torch.Tensor | None = None) -> torch.Tensor:
    """The node's op on new input and weight (and bias, when given), its other arguments as recorded."""
    if bias is not None and rest:
        rest = [bias, *rest[1:]]
    return node.target(x, weight, *rest, **node.kwargs)


def _fake_quant(weight: torch.Tensor, layer: WeightedLayer) -> torch.Tensor:
    import torch

    scale = _broadcast(layer.scale, weight, layer.axis)
    return torch.round(weight / scale).clamp(layer.qmin, layer.qmax) * scale


def _broadcast(values: torch.Tensor, like: torch.Tensor, axis: int) -> torch.Tensor:
    shape = [1] * like.dim()
    shape[axis] = -1
    return values.reshape(shape).to(like.dtype)


def _quantized_attr(module: fx.GraphModule, arg: Any) -> dict[str, Any] | None:
    """`dequantize_per_channel(quantize_per_channel(get_attr W, scale, zp, axis, qmin, qmax, ...))` -> W's fields."""
    if not _is_call(arg, "dequantize_per_channel"):
        return None
    quantize = arg.args[0]
    if not _is_call(quantize, "quantize_per_channel") or getattr(quantize.args[0], "op", None) != "get_attr":
        return None
    scale, zero_point = (_attr(module, a.target) if hasattr(a, "target") else a for a in quantize.args[1:3])
    axis, qmin, qmax = quantize.args[3:6]
    if zero_point.abs().max() != 0:
        return None                         # symmetric grids only: the largest weight fixes the scale
    return {"weight": quantize.args[0].target, "scale": scale, "zero_point": zero_point, "axis": int(axis),
            "qmin": int(qmin), "qmax": int(qmax)}


def _plain_or_quantized_attr(module: fx.GraphModule, arg: Any) -> str | None:
    if getattr(arg, "op", None) == "get_attr":
        return arg.target
    if _is_call(arg, "dequantize_per_tensor") and _is_call(arg.args[0], "quantize_per_tensor"):
        source = arg.args[0].args[0]
        return source.target if getattr(source, "op", None) == "get_attr" else None
    return None


def _is_call(node: Any, name: str) -> bool:
    return getattr(node, "op", None) == "call_function" and name in str(node.target)


def _attr(module: torch.nn.Module, target: str) -> torch.Tensor:
    for part in target.split("."):
        module = getattr(module, part)
    return module   # type: ignore[return-value]


def _set_attr(module: torch.nn.Module, target: str, value: torch.Tensor) -> None:
    import torch

    *path, last = target.split(".")
    for part in path:
        module = getattr(module, part)
    current = getattr(module, last)
    if isinstance(current, torch.nn.Parameter):
        current.data.copy_(value.detach())
    else:
        setattr(module, last, value.detach().clone())
