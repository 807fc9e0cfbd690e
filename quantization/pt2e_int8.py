"""Static int8 through PT2E, shared by every backend whose quantizer is a PT2E quantizer (XNNPACK for
ExecuTorch, litert-torch for LiteRT): capture once, calibrate, rank layers by sensitivity and, under an
accuracy budget, keep the most sensitive layers float. A backend only says how to build its quantizer."""
from __future__ import annotations

import dataclasses
import functools
from abc import abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeVar

from edge_pipeline.plugins import DataBundle, Model, ModelTransform, QuantizeSettings

from .calibration import calibration_method
from .pt2e import capture_for_quantization, quantize_static
from .pt2e_sensitivity import NUMERICS, WHAT, rank_layers
from .sensitivity import EVAL_SAMPLES, Budgeted, LayerRow, Predict, method_text, quantizable_layers, torch_predict

if TYPE_CHECKING:
    from torch import fx
    from torchao.quantization.pt2e.quantizer import QuantizationSpec, Quantizer

NodeFilter = Callable[["fx.Node"], bool]


class ActivationConfig(Protocol):
    """A PT2E quantization config (XNNPACK's or litert-torch's dataclass): the activation specs it holds."""

    @property
    def input_activation(self) -> QuantizationSpec | None: ...

    @property
    def output_activation(self) -> QuantizationSpec | None: ...


C = TypeVar("C", bound=ActivationConfig)


class Pt2eStaticInt8(Budgeted, ModelTransform):
    frameworks: ClassVar[tuple[str, ...]] = ("torch",)
    distributions: ClassVar[tuple[str, ...]] = ("torch", "torchao")   # PT2E capture and its observers
    needs_calibration: ClassVar[bool] = True
    fold_quantize: ClassVar[bool] = True
    # PT2E quantizers observe activations with a histogram (L2-optimal range search) by default; min-max is the
    # other observer they take. Percentile and entropy calibration are not PT2E observers: refused up front.
    calibration_methods: ClassVar[tuple[str, ...]] = ("histogram", "minmax")

    @abstractmethod
    def quantizer(self, node_filter: NodeFilter, method: str) -> Quantizer:
        """The backend's quantizer, symmetric per-channel, restricted to the nodes `node_filter` accepts, its
        activations observed with calibration `method`."""

    def finish(self, quantized: Model, method: str) -> Model:
        """Backend converter settings the exporter needs (e.g. litert-torch's QuantConfig), for the model that ships."""
        return quantized

    def apply(self, model: Model, data: DataBundle, settings: QuantizeSettings) -> Model:
        method = calibration_method(self, settings)
        captured = capture_for_quantization(model)
        groups = layer_groups(captured, quantizable_layers(model.module))
        batch = data.batch

        def quantize(skip: frozenset[str] = frozenset()) -> tuple[Model, Predict]:
            dropped = set().union(*(groups[name] for name in skip))   # constants follow their compute node
            quantizer = self.quantizer(lambda node: node.op != "call_function" or node.name not in dropped, method)
            quantized = quantize_static(model, quantizer, data, fold_quantize=self.fold_quantize, captured=captured)
            return quantized, torch_predict(quantized.module, batch)

        def rank(quantized: Model) -> tuple[list[LayerRow], int]:
            return rank_layers(captured, quantized.module, groups, data.eval_inputs[:EVAL_SAMPLES], batch), 0

        quantized, notes = self.fall_back(quantize, rank, torch_predict(model.module, batch), data, settings,
                                          method_text(WHAT, NUMERICS))
        scheme = quantized.provenance.get("quantization")
        quantization = {**(scheme if isinstance(scheme, dict) else {}), "calibration_method": method, **notes}
        return self.finish(quantized.with_provenance(quantization=quantization), method)

    @staticmethod
    def with_calibration(config: C, method: str) -> C:
        """`config` with its activation observer swapped for min-max when that method was asked for."""
        if method != "minmax":
            return config
        from torchao.quantization.pt2e.observer import MinMaxObserver

        def minmax(spec: QuantizationSpec | None) -> QuantizationSpec | None:
            if spec is None:
                return None
            ctr = spec.observer_or_fake_quant_ctr   # keyword arguments carry over from a plain functools.partial
            args = (ctr.keywords or {}) if isinstance(ctr, functools.partial) else {}
            return dataclasses.replace(spec, observer_or_fake_quant_ctr=MinMaxObserver.with_args(**args))

        return dataclasses.replace(config, input_activation=minmax(config.input_activation),
                                   output_activation=minmax(config.output_activation))


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


FUSED_OPS = ("batch_norm", "getitem", "relu", "hardtanh", "clamp")   # one int8 pattern with the conv/linear before them


def _innermost(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0].replace("L['self'].", "") if stack else ""
