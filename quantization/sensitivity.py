"""Per-layer int8 sensitivity and accuracy-budgeted fallback, shared by every backend.

When: `[quantization] sensitivity` (`--sensitivity`) is "on-failure" (default: quantize the whole model once and
rank only when a `max-accuracy-drop` budget is measured and missed), "always", or "never".

Ranking (the shipped model's one calibration, no re-quantization per layer; AIMET's per-layer quantizer analysis
and NNCF's ranking idea, in one pass): each backend compares each quantizable layer's int8 output with the float
model's on the same evaluation samples, per output channel (a channel the int8 grid flattens counts as fully lost
even when one outlier channel carries most of the tensor's energy). PT2E and ORT QDQ evaluate each layer's int8
piece (input quantizer, int8 weights, output quantizer, the shipped scales) on the float model's activations:
"only this layer int8" without re-calibrating (pt2e_sensitivity.py, ort_sensitivity.py). TFLiteConverter's int8
model has no float tensor before its quantizers: its error is accumulated up to each op (tflite_int8_debug.py).

Fallback (NNCF's accuracy-control idea): when the fully quantized model loses more top-1 accuracy than the
budget, keep the k most sensitive layers float, each k verified on the real quantized model: k = 1, 2, 4, ...
until the budget holds, then bisect down to the smallest k that holds (O(log n) re-quantizations, not n).

Backends plug in as `Predict` functions (inputs -> outputs) and a `Rank` function (quantized result -> rows).
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol, TypedDict, TypeVar

import numpy as np

from edge_pipeline.plugins import DataBundle, QuantizeSettings
from edge_pipeline.tensors import Tensors, flatten_outputs
from edge_pipeline.types import JsonObject

if TYPE_CHECKING:
    import torch

EVAL_SAMPLES = 128          # evaluation samples the ranking passes run on
MODES = ("on-failure", "always", "never")
MAX_DB = 120.0              # an SQNR with (almost) no noise is reported as this
DEAD_CHANNEL = 1e-4         # channels with less energy than this share of the median channel's are not judged

Predict = Callable[[Tensors], np.ndarray]
R = TypeVar("R")           # what a backend quantizes to: a Model, a file, a flatbuffer
R_co = TypeVar("R_co", covariant=True)
T = TypeVar("T")


class LayerRow(TypedDict):
    """One ranked layer, as the report lists it (most sensitive first)."""

    layer: str
    sqnr_db: float


class Quantize(Protocol[R_co]):
    """Quantizes with the layers in `skip` kept float (and, for a backend with an int16 rung, those in `promote`
    given int16 activations: only such a backend is passed `promote`); returns the result and how to run it."""

    def __call__(self, skip: frozenset[str] = ..., promote: frozenset[str] = ...) -> tuple[R_co, Predict]: ...


# fully quantized result -> (rows, extra quantization passes the ranking needed)
Rank = Callable[[R], tuple[list[LayerRow], int]]
Share = Callable[[Sequence[str]], float]    # regions kept float -> the share of the weights they hold


class Budgeted:
    """An int8 transform that ranks layers and falls back under the accuracy budget: the export stage gives it
    the target's `max-accuracy-drop` (minus what pruning spent) and the sensitivity mode in its settings."""

    accuracy_budget: ClassVar[bool] = True    # marks the transform for the export stage
    int16_rung: ClassVar[bool] = False        # its fallback gives regions int16 activations before float

    @classmethod
    def fall_back(cls, quantize: Quantize[R], rank: Rank[R], reference: Predict, data: DataBundle,
                  settings: QuantizeSettings, method: str, share: Share | None = None) -> tuple[R, JsonObject]:
        """`rank_and_fall_back` under this step's budget and `[quantization] sensitivity` mode."""
        return rank_and_fall_back(quantize, rank, reference, data, settings.max_accuracy_drop, method,
                                  settings.sensitivity, share, cls.int16_rung)


def quantizable_layers(module: torch.nn.Module) -> list[str]:
    import torch

    return [name for name, m in module.named_modules()
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv1d, torch.nn.Linear))]


# --- feeding: every backend slices its samples into model batches here (one place to change for multi-input) ---

def for_batches(inputs: Tensors, batch: int, run_batch: Callable[[Tensors], T]) -> list[T]:
    """`run_batch` on every whole batch (every input) of the model's fixed batch size (the remainder is dropped)."""
    return [run_batch(part) for part in inputs.batches(batch)]


def torch_inputs(x: Tensors) -> tuple[torch.Tensor, ...]:
    """One batch as the positional tensors a torch module takes."""
    import torch

    return tuple(torch.from_numpy(a) for a in x)


def batched(run_batch: Callable[[Tensors], object], batch: int) -> Predict:
    """A Predict over whole batches of the model's fixed batch size (the remainder is dropped); ranking and
    fallback read the first output (of a tuple or dict)."""
    def first(out: object) -> np.ndarray:
        return as_numpy(flatten_outputs(out)[0][1])

    return lambda inputs: np.concatenate(for_batches(inputs, batch, lambda x: first(run_batch(x)))).astype(np.float32)


def first_output(run: Callable[[Tensors], list[np.ndarray]]) -> Predict:
    """A Predict over a shipped artifact's raw outputs: its first, as for every backend's ranking and fallback."""
    return lambda inputs: np.asarray(run(inputs)[0]).astype(np.float32)


def as_numpy(value: object) -> np.ndarray:
    """A backend's output as numpy. A torch tensor can only exist once torch is imported, so a TFLite or ORT
    ranking never imports it for this check."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().numpy()
    return np.asarray(value)


def torch_predict(module: torch.nn.Module, batch: int) -> Predict:
    import torch

    def run(x: Tensors) -> object:
        with torch.no_grad():
            return module(*torch_inputs(x))
    return batched(run, batch)


# --- ranking: per-channel error of each layer's output, accumulated over batches ---

class LayerErrors:
    """Per-channel signal and noise energy at named points (a layer's output), summed over batches."""

    def __init__(self) -> None:
        self.sums: dict[str, list[np.ndarray]] = {}

    def add(self, point: str, reference: object, test: object, channel_axis: int) -> None:
        """`reference` and `test`: arrays or torch tensors of the same shape."""
        ref, got = _numpy(reference), _numpy(test)
        if ref.ndim >= 2:
            ref, got = np.moveaxis(ref, channel_axis, 0), np.moveaxis(got, channel_axis, 0)
        rows = ref.shape[0] if ref.ndim >= 2 else 1
        ref, got = ref.reshape(rows, -1), got.reshape(rows, -1)
        signal, noise = (ref ** 2).sum(axis=1), ((ref - got) ** 2).sum(axis=1)
        if point in self.sums:
            self.sums[point][0] += signal
            self.sums[point][1] += noise
        else:
            self.sums[point] = [signal, noise]

    def ratio(self, point: str) -> float:
        """Mean over live channels of noise / signal energy (0: exact, 1: the channel's signal is lost)."""
        if point not in self.sums:
            return 0.0
        signal, noise = self.sums[point]
        positive = signal[signal > 0]
        if positive.size == 0:
            return 0.0
        live = signal > DEAD_CHANNEL * float(np.median(positive))
        return float(np.mean(noise[live] / signal[live]))

    def rows(self, points: dict[str, list[str]]) -> list[LayerRow]:
        """`points`: layer -> the points of its weighted ops (their noise adds). Most sensitive first."""
        rows = [(db(sum(self.ratio(name) for name in names)), index, layer)
                for index, (layer, names) in enumerate(points.items())]
        return [LayerRow(layer=layer, sqnr_db=sqnr) for sqnr, _, layer in sorted(rows)]


def _numpy(value: object) -> np.ndarray:
    return np.asarray(as_numpy(value), dtype=np.float64)


def db(noise_ratio: float) -> float:
    return MAX_DB if noise_ratio <= 10 ** (-MAX_DB / 10) else round(float(-10 * np.log10(noise_ratio)), 2) + 0.0


def method_text(what: str, numerics: str) -> str:
    return (f"{what}; {numerics}; the shipped model's one calibration, {EVAL_SAMPLES} eval samples run once, no "
            f"re-quantization per layer; SQNR from the mean over output channels "
            f"of noise/signal energy (a channel the int8 grid flattens counts as lost even when an outlier channel "
            f"carries most of the energy); the lower, the more that layer hurts")


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    noise = float(np.sum((reference - test) ** 2))
    signal = float(np.sum(reference ** 2))
    return float("inf") if noise == 0 else round(float(10 * np.log10(signal / noise)), 2)


def top1(outputs: np.ndarray, labels: np.ndarray | None) -> float | None:
    if labels is None or len(labels) == 0:
        return None
    return float((outputs.argmax(axis=1) == labels[:len(outputs)]).mean())


# --- fallback: keep the most sensitive layers float, verified on the real quantized model ---

def fallback(measure: Callable[[int], float | None], n_layers: int, max_drop_pts: float,
             stops: tuple[int, ...] = ()) -> tuple[int, bool]:
    """The smallest k (layers kept float, most sensitive first) whose measured drop is within budget, found by
    trying k = 1, 2, 4, ... and then bisecting; `measure(k)` quantizes and measures (k = 0 is measured already
    and missed). Each of `stops` is tried before any k above it (a ladder's last int16 rung before its first
    float one). Returns (k, met); when even every layer float misses, (n_layers, False)."""
    def holds(k: int) -> bool:
        drop = measure(k)
        return drop is None or drop <= max_drop_pts

    failed, k = 0, 1
    while not holds(k):
        failed = k
        if k == n_layers:
            return n_layers, False
        k = min(2 * k, *(s for s in (*stops, n_layers) if s > k))
    met = k
    while met - failed > 1:
        middle = (failed + met) // 2
        if holds(middle):
            met = middle
        else:
            failed = middle
    return met, True


@dataclass(frozen=True)
class Verified:
    """One set of regions kept float (and, on a ladder, given int16 activations), measured on the real quantized
    model."""

    kept_float: tuple[str, ...]
    accuracy: float | None
    drop_pts: float | None
    weight_share: float | None = None    # of the weights the kept regions hold (None: the backend cannot say)
    kept_int16: tuple[str, ...] | None = None   # None: the backend has no int16 rung

    def json(self) -> JsonObject:
        shared: JsonObject = {"float_weight_share": self.weight_share} if self.weight_share is not None else {}
        int16: JsonObject = {"kept_int16": list(self.kept_int16)} if self.kept_int16 is not None else {}
        return {"kept_float": list(self.kept_float), **int16, "accuracy": self.accuracy, "drop_pts": self.drop_pts,
                **shared}


def rank_and_fall_back(quantize: Quantize[R], rank: Rank[R], reference: Predict, data: DataBundle,
                       budget: float | None, method: str, mode: str = "on-failure",
                       share: Share | None = None, int16_rung: bool = False) -> tuple[R, JsonObject]:
    """The whole recipe for one backend: quantize fully; measure the drop when a budget and labels exist; rank
    layers when `mode` asks ("always") or the budget is missed ("on-failure"); fall back under the budget. Returns
    the result to ship and the report notes. `int16_rung`: the fallback is a ladder, every region given int16
    activations (most sensitive first) before any is kept float."""
    result, predict = quantize()
    passes = 1
    labels = data.eval_labels
    measurable = budget is not None and labels is not None and len(labels) > 0 and mode != "never"
    float_acc = top1(reference(data.eval_inputs), labels) if measurable else None
    steps: list[Verified] = []

    def step(kept: list[str], step_predict: Predict, int16: list[str] | None) -> float | None:
        acc = top1(step_predict(data.eval_inputs), labels)
        drop = None if acc is None or float_acc is None else round((float_acc - acc) * 100, 4)
        steps.append(Verified(tuple(kept), acc, drop, share(kept) if share is not None else None,
                              tuple(int16) if int16 is not None else None))
        return drop

    first_drop = step([], predict, [] if int16_rung else None) if measurable else None
    missed = first_drop is not None and first_drop > float(budget or 0.0)
    notes: JsonObject = {}
    ranking: list[LayerRow] = []
    if mode == "always" or (mode == "on-failure" and missed):
        ranking, extra = rank(result)
        passes += extra
        notes["sensitivity"] = {"mode": mode, "status": "ran (always)" if mode == "always" else
                                "ran (on-failure: budget missed)", "method": method, "layers": ranking,
                                "eval_samples": min(EVAL_SAMPLES, len(data.eval_inputs)), "quantizations": extra}
    else:
        why = ("never" if mode == "never" else "on-failure: no labels to measure the budget with"
               if budget is not None and not measurable else "on-failure: no budget missed")
        notes["sensitivity"] = {"mode": mode, "status": f"not run ({why})", "layers": [], "quantizations": 0}
    if missed and ranking:
        order, rungs = [row["layer"] for row in ranking], 2 if int16_rung else 1
        variants: dict[int, tuple[R, Verified]] = {}

        def measure(k: int) -> float | None:
            floats = order[:max(0, k - len(order))] if int16_rung else order[:k]
            int16 = [r for r in order[:k] if r not in floats] if int16_rung else None
            model, step_predict = (quantize(skip=frozenset(floats), promote=frozenset(int16 or ())) if int16_rung
                                   else quantize(skip=frozenset(floats)))
            drop = step(floats, step_predict, int16)
            variants[k] = model, steps[-1]
            return drop

        k, met = fallback(measure, rungs * len(order), float(budget), stops=(len(order),) if int16_rung else ())
        result, shipped = variants[k]
        # every verified set in the order tried, the shipped one last
        steps.append(steps.pop(next(i for i, s in enumerate(steps) if s is shipped)))
        notes["fallback"] = {"max_accuracy_drop": float(budget), "float_accuracy": float_acc,
                             **{key: value for key, value in shipped.json().items() if key.startswith("kept_")},
                             **({"float_weight_share": steps[-1].weight_share} if share is not None else {}),
                             "met": met, "steps": [s.json() for s in steps], "verifications": len(variants),
                             "search": "k = 1, 2, 4, ... most sensitive regions "
                                       f"{'int16, every one before any float' if int16_rung else 'float'} until "
                                       "the budget holds, then bisect"}
        passes += len(variants)
    elif measurable:
        notes["budget_check"] = {"max_accuracy_drop": float(budget or 0.0), "float_accuracy": float_acc,
                                 **steps[0].json()}
    notes["quantization_passes"] = passes
    return result, notes
