"""Static int8 through PT2E, shared by every backend whose quantizer is a PT2E quantizer (XNNPACK for
ExecuTorch, litert-torch for LiteRT): capture once, calibrate, rank layers by sensitivity and, under an
accuracy budget, keep the most sensitive layers float. A backend only says how to build its quantizer."""
from __future__ import annotations

import dataclasses
from dataclasses import replace
from typing import Any, Callable, ClassVar

from edge_pipeline.plugins import DataBundle, Model, TransformBase

from .pt2e import capture_for_quantization, quantize_static
from .pt2e_sensitivity import NUMERICS, WHAT, rank_layers
from .sensitivity import (EVAL_SAMPLES, Budgeted, Predict, method_text, quantizable_layers, rank_and_fall_back,
                          torch_predict)

NodeFilter = Callable[[Any], bool]


class Pt2eStaticInt8(Budgeted, TransformBase):
    name: ClassVar[str]
    frameworks: ClassVar[tuple[str, ...]] = ("torch",)
    needs_calibration: ClassVar[bool] = True
    fold_quantize: ClassVar[bool] = True
    # PT2E quantizers observe activations with a histogram (L2-optimal range search) by default; min-max is the
    # other observer they take. Percentile and entropy calibration are not PT2E observers: refused up front.
    calibration_methods: ClassVar[tuple[str, ...]] = ("histogram", "minmax")
    calibration_method: str = "histogram"

    def quantizer(self, node_filter: NodeFilter) -> Any:
        """The backend's quantizer, symmetric per-channel, restricted to the nodes `node_filter` accepts."""
        raise NotImplementedError

    def finish(self, quantized: Model) -> Model:
        """Backend converter settings the exporter needs (e.g. litert-torch's QuantConfig), for the model that ships."""
        return quantized

    def apply(self, model: Model, data: DataBundle) -> Model:
        captured = capture_for_quantization(model)
        groups = layer_groups(captured, quantizable_layers(model.module))
        batch = data.batch

        def quantize(skip: frozenset[str] = frozenset()) -> tuple[Model, Predict]:
            dropped = set().union(*(groups[name] for name in skip))   # constants follow their compute node
            quantizer = self.quantizer(lambda node: node.op != "call_function" or node.name not in dropped)
            quantized = quantize_static(model, quantizer, data, fold_quantize=self.fold_quantize, captured=captured)
            return quantized, torch_predict(quantized.module, batch)

        def rank(quantized: Model) -> tuple[list[dict[str, Any]], int]:
            return rank_layers(captured, quantized.module, groups, data.eval_inputs[:EVAL_SAMPLES], batch), 0

        quantized, notes = rank_and_fall_back(quantize, rank, torch_predict(model.module, batch), data,
                                              self.max_accuracy_drop, method_text(WHAT, NUMERICS), self.sensitivity)
        quantization = {**quantized.provenance["quantization"], "calibration_method": self.calibration_method, **notes}
        return self.finish(replace(quantized, provenance={**quantized.provenance, "quantization": quantization}))

    def with_calibration(self, config: Any) -> Any:
        """`config` with its activation observer swapped for min-max when that method was asked for."""
        if self.calibration_method != "minmax":
            return config
        from torchao.quantization.pt2e.observer import MinMaxObserver

        def minmax(spec: Any) -> Any:
            if spec is None:
                return None
            args = getattr(spec.observer_or_fake_quant_ctr, "keywords", {}) or {}
            return dataclasses.replace(spec, observer_or_fake_quant_ctr=MinMaxObserver.with_args(**args))

        return dataclasses.replace(config, input_activation=minmax(config.input_activation),
                                   output_activation=minmax(config.output_activation))


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
