"""Static int8 through PT2E, shared by every backend whose quantizer is a PT2E quantizer (XNNPACK for
ExecuTorch, litert-torch for LiteRT): capture once, calibrate, rank layers by sensitivity and, under an
accuracy budget, keep the most sensitive layers float. A backend only says how to build its quantizer."""
from __future__ import annotations

import dataclasses
import functools
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeVar

from edge_pipeline.plugins import DataBundle, Model, ModelTransform, QuantizeSettings, Ship

from .calibration import calibration_method
from .nncf_ptq import ALGORITHMS
from .pt2e import ADAROUND, capture_for_quantization, quantize_static
from .pt2e_regions import quantized_regions, weight_share
from .pt2e_sensitivity import NUMERICS, WHAT, rank_layers
from .sensitivity import (
    EVAL_SAMPLES,
    Budgeted,
    LayerRow,
    Predict,
    first_output,
    method_text,
    quantizable_layers,
    torch_predict,
)

if TYPE_CHECKING:
    from torch import fx
    from torchao.quantization.pt2e.observer import ObserverBase
    from torchao.quantization.pt2e.quantizer import QuantizationSpec, Quantizer

NodeFilter = Callable[["fx.Node"], bool]
SHIPPED = "the artifact that ships, in its own runtime (every fallback step and the budget check)"
REFERENCE = "PT2E's reference q/dq graph in torch (no runtime for the artifact here)"
# The smallest per-channel weight scale: torch's own observer default (float32 epsilon). XNNPACK's and
# litert-torch's configs raise it to 2**-12: a channel whose largest |w| is under 0.031 then gets fewer than 127
# levels, one under 3.7e-4 only 0 and +-1, and weights under 1.2e-4 round to 0. The PP-OCRv4 detector's head conv
# (|w| <= 2.4e-4 against +-2000 inputs) kept next to nothing and the detector's map collapsed in both runtimes
# (bench/bench_quant_real.py).
WEIGHT_EPS = 2.0 ** -23


class QuantizerConfig(Protocol):
    """A PT2E quantization config (XNNPACK's or litert-torch's dataclass): the specs edgepipe adjusts."""

    @property
    def input_activation(self) -> QuantizationSpec | None: ...

    @property
    def output_activation(self) -> QuantizationSpec | None: ...

    @property
    def weight(self) -> QuantizationSpec | None: ...


C = TypeVar("C", bound=QuantizerConfig)


class Pt2eStaticInt8(Budgeted, ModelTransform):
    frameworks: ClassVar[tuple[str, ...]] = ("torch",)
    distributions: ClassVar[tuple[str, ...]] = ("torch", "torchao")   # PT2E capture and its observers
    needs_calibration: ClassVar[bool] = True
    fold_quantize: ClassVar[bool] = True
    # PT2E quantizers observe activations with a histogram (L2-optimal range search) by default; min-max is the
    # other observer they take; percentile (NNCF's mean of per-batch quantiles) runs through NNCF. Entropy
    # calibration is no PT2E observer: refused up front.
    calibration_methods: ClassVar[tuple[str, ...]] = ("histogram", "minmax", "percentile")
    algorithms: ClassVar[tuple[str, ...]] = (*ALGORITHMS, ADAROUND)
    default_algorithms: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def quantizer(self, node_filter: NodeFilter, method: str) -> Quantizer:
        """The backend's quantizer, symmetric per-channel, restricted to the nodes `node_filter` accepts, its
        activations observed with calibration `method`."""

    def float_quantizer(self, node_filter: NodeFilter, method: str) -> Quantizer:
        """`quantizer` restricted to nodes that compute floats: integer arithmetic (token positions, a mask's
        indices) observed as activations would turn indices into floats (IndexError in a text encoder). The
        quantizer's own graph rewrite turns `arange + 1`'s scalar into a float32 constant too: such constants
        are given back their node's integer dtype."""
        quantizer = self.quantizer(lambda node: computes_floats(node) and node_filter(node), method)
        rewrite = quantizer.transform_for_annotation

        def transform(model: fx.GraphModule) -> fx.GraphModule:
            model = rewrite(model)
            keep_integer_constants(model)
            return model
        quantizer.transform_for_annotation = transform   # type: ignore[method-assign]
        return quantizer

    def prepare_graph(self, captured: fx.GraphModule) -> None:
        """Rewrites the captured graph in place into ops the backend's converter lowers (none by default)."""

    def finish(self, quantized: Model, method: str) -> Model:
        """Backend converter settings the exporter needs (e.g. litert-torch's QuantConfig), for the model that ships."""
        return quantized

    def apply(self, model: Model, data: DataBundle, settings: QuantizeSettings) -> Model:
        return self.apply_shipped(model, data, settings, None)

    def apply_shipped(self, model: Model, data: DataBundle, settings: QuantizeSettings, ship: Ship | None) -> Model:
        """Quantizes, and under a missed budget keeps the most sensitive regions float; every candidate is
        measured as the artifact that ships (`ship`), or as PT2E's reference q/dq graph where no runtime is here."""
        algorithms = settings.algorithms if settings.algorithms is not None else self.default_algorithms
        candidates = self.candidates(model, data, calibration_method(self, settings), ship, algorithms)
        quantized, notes = self.fall_back(candidates.quantize, candidates.rank, torch_predict(model.module, data.batch),
                                          data, settings, method_text(WHAT, NUMERICS),
                                          weight_share(model.module, candidates.regions))
        scheme = quantized.provenance.get("quantization")
        quantization = {**(scheme if isinstance(scheme, dict) else {}), "calibration_method": candidates.method,
                        "regions": len(candidates.regions), "verified_on": SHIPPED if ship else REFERENCE, **notes}
        return quantized.with_provenance(quantization=quantization)

    def candidates(self, model: Model, data: DataBundle, method: str, ship: Ship | None,
                   algorithms: tuple[str, ...] = ()) -> Candidates:
        captured = capture_for_quantization(model)
        self.prepare_graph(captured)
        regions = quantized_regions(captured, quantizable_layers(model.module),
                                    self.float_quantizer(lambda _: True, method))
        return Candidates(self, model, data, method, captured, regions, ship, algorithms)

    @staticmethod
    def configured(config: C, method: str) -> C:
        """The vendor's `config` with exact weight scales (WEIGHT_EPS) and, when that method was asked for, its
        activation observer swapped for min-max (keeping the vendor's eps)."""
        from torchao.quantization.pt2e.observer import MinMaxObserver

        activation = MinMaxObserver if method == "minmax" else None
        return dataclasses.replace(config, weight=_observer(config.weight, None, eps=WEIGHT_EPS),
                                   input_activation=_observer(config.input_activation, activation),
                                   output_activation=_observer(config.output_activation, activation))


def _observer(spec: QuantizationSpec | None, kind: type[ObserverBase] | None, **changed: float) -> \
        QuantizationSpec | None:
    """`spec` observed by `kind` (None: its own observer class) with `changed` keyword arguments. `with_args`
    wraps a functools.partial (`.p`) and torchao's prepare reads the class name through one level only, so the
    new constructor is built from the class itself; a swapped class keeps only the old one's eps."""
    if spec is None or (kind is None and not changed):
        return spec
    ctr = spec.observer_or_fake_quant_ctr
    partial = getattr(ctr, "p", ctr)
    if not isinstance(partial, functools.partial) or not isinstance(partial.func, type):
        raise TypeError(f"unexpected PT2E observer constructor {ctr!r}")
    kept = partial.keywords if kind is None else {k: v for k, v in partial.keywords.items() if k == "eps"}
    return dataclasses.replace(spec, observer_or_fake_quant_ctr=(kind or partial.func).with_args(**{**kept,
                                                                                                   **changed}))


@dataclass(frozen=True)
class Candidates:
    """What the fallback searches over: the model quantized with some regions kept float, each measured as it
    ships (`ship`) or, where no runtime is here, as PT2E's reference q/dq graph."""

    transform: Pt2eStaticInt8
    model: Model
    data: DataBundle
    method: str
    captured: fx.GraphModule
    regions: dict[str, set[str]]
    ship: Ship | None
    algorithms: tuple[str, ...] = ()

    def quantize(self, skip: frozenset[str] = frozenset()) -> tuple[Model, Predict]:
        dropped = set().union(*(self.regions[name] for name in skip))   # every op of the region stays float
        quantizer = self.transform.float_quantizer(
            lambda node: node.op != "call_function" or node.name not in dropped, self.method)
        quantized = self.transform.finish(quantize_static(self.model, quantizer, self.data,
                                                          fold_quantize=self.transform.fold_quantize,
                                                          captured=self.captured, algorithms=self.algorithms,
                                                          method=self.method), self.method)
        if self.ship is not None:
            return quantized, first_output(self.ship(quantized))
        return quantized, torch_predict(quantized.module, self.data.batch)

    def rank(self, quantized: Model) -> tuple[list[LayerRow], int]:
        inputs = self.data.eval_inputs[:EVAL_SAMPLES]
        return rank_layers(self.captured, quantized.module, self.regions, inputs, self.data.batch), 0


def computes_floats(node: fx.Node) -> bool:
    """A node whose recorded output is a tensor of integers or booleans is not quantized (unknown: it may be)."""
    value = node.meta.get("val")
    dtype = getattr(value, "dtype", None)
    return dtype is None or dtype.is_floating_point


def keep_integer_constants(model: fx.GraphModule) -> None:
    """One-element float constants read by integer arithmetic take that arithmetic's dtype back."""
    for node in model.graph.nodes:
        dtype = getattr(node.meta.get("val"), "dtype", None)
        if node.op != "call_function" or dtype is None or dtype.is_floating_point:
            continue
        for arg in node.args:
            if getattr(arg, "op", None) == "get_attr" and "." not in arg.target:
                constant = getattr(model, arg.target, None)
                if constant is not None and constant.numel() == 1 and constant.is_floating_point():
                    setattr(model, arg.target, constant.to(dtype))
