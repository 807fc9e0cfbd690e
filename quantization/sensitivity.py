"""Per-layer int8 sensitivity and accuracy-budgeted fallback, shared by every backend.

Sensitivity: for each quantizable layer (by its name in the source model), quantize *only that layer* with the
backend's own quantizer and calibration data, run the result on evaluation samples and measure the SQNR of its
output against the float model's: the lower, the more that layer alone hurts. Fallback (NNCF's accuracy-control
idea): when the fully quantized model loses more top-1 accuracy than `max-accuracy-drop`, keep the most
sensitive layers float, one at a time, until the budget holds; the layers kept are recorded.

Backends plug in as `Predict` functions (inputs -> outputs): PT2E reference numerics for torch, the ONNX
Runtime session for ORT QDQ models, the LiteRT interpreter for TFLiteConverter models.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from edge_pipeline.plugins import DataBundle
from edge_pipeline.tensors import Tensors, flatten_outputs

MAX_LAYERS = 24        # larger models: the 24 layers with the most weights are ranked (each costs a calibration)
EVAL_SAMPLES = 128
RANKING_CALIBRATION = 128   # samples that calibrate each "only this layer" variant (shipped models use them all)

Predict = Callable[[Tensors], np.ndarray]


class Budgeted:
    """Settings the export stage gives every int8 transform that ranks layers and falls back under a budget."""
    accuracy_budget = True                    # marks the transform for the export stage
    max_accuracy_drop: float | None = None    # the target's `max-accuracy-drop`, minus what pruning spent
    rank_layers: bool = True                  # `[quantization] sensitivity`


def quantizable_layers(module: Any) -> list[str]:
    import torch

    layers = [(name, sum(p.numel() for p in m.parameters(recurse=False)))
              for name, m in module.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv1d, torch.nn.Linear))]
    return largest(layers)


def largest(layers: list[tuple[str, int]]) -> list[str]:
    """Layer names in model order, capped to the MAX_LAYERS with the most weights."""
    if len(layers) > MAX_LAYERS:
        keep = {n for n, _ in sorted(layers, key=lambda item: -item[1])[:MAX_LAYERS]}
        layers = [item for item in layers if item[0] in keep]
    return [name for name, _ in layers]


def batched(run_batch: Callable[[Tensors], Any], batch: int) -> Predict:
    """A Predict over whole batches of the model's fixed batch size (the remainder is dropped); ranking reads
    the first output."""
    def predict(inputs: Tensors) -> np.ndarray:
        outputs = []
        for part in inputs.batches(batch):
            out = flatten_outputs(run_batch(part))[0][1]    # a tuple's or dict's first output
            outputs.append(out.detach().numpy() if hasattr(out, "detach") else np.asarray(out))
        return np.concatenate(outputs).astype(np.float32)
    return predict


def torch_predict(module: Any, batch: int) -> Predict:
    import torch

    def run(x: Tensors) -> Any:
        with torch.no_grad():
            return module(*(torch.from_numpy(a) for a in x))
    return batched(run, batch)


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    noise = float(np.sum((reference - test) ** 2))
    signal = float(np.sum(reference ** 2))
    return float("inf") if noise == 0 else round(float(10 * np.log10(signal / noise)), 2)


def top1(outputs: np.ndarray, labels: np.ndarray | None) -> float | None:
    return None if labels is None or len(labels) == 0 else float((outputs.argmax(axis=1) == labels[:len(outputs)]).mean())


def method_text(numerics: str) -> str:
    return (f"SQNR of the model's output with only that layer (and its fused activation) int8, vs the float model, "
            f"{numerics} on eval samples: the lower, the more that layer hurts (each variant calibrated on the "
            f"first {RANKING_CALIBRATION} calibration samples, to rank quickly)")


def layer_sensitivity(reference: Predict, quantize_only: Callable[[str], Predict], data: DataBundle,
                      layers: list[str]) -> list[dict[str, Any]]:
    """`quantize_only(layer)` predicts with only that layer int8. Most sensitive first."""
    inputs = data.eval_inputs[:EVAL_SAMPLES]
    expected = reference(inputs)
    rows = []
    for name in layers:
        out = quantize_only(name)(inputs)
        rows.append({"layer": name, "sqnr_db": sqnr_db(expected, out),
                     "agreement": float((out.argmax(axis=1) == expected.argmax(axis=1)).mean())})
    return sorted(rows, key=lambda r: r["sqnr_db"])


def fallback(reference: Predict, quantized: Predict, with_float: Callable[[set[str]], Predict], data: DataBundle,
             ranking: list[dict[str, Any]], max_drop_pts: float) -> dict[str, Any]:
    """Keeps the most sensitive layers float until the top-1 drop (on the eval split) is within budget.
    `with_float(layers)` builds (and the caller keeps) the model with those layers float."""
    float_acc = top1(reference(data.eval_inputs), data.eval_labels)
    kept: list[str] = []
    steps = []
    predict = quantized
    while True:
        acc = top1(predict(data.eval_inputs), data.eval_labels)
        drop = None if acc is None or float_acc is None else round((float_acc - acc) * 100, 4)
        steps.append({"kept_float": list(kept), "accuracy": acc, "drop_pts": drop})
        if drop is None or drop <= max_drop_pts or len(kept) == len(ranking):
            break
        kept.append(ranking[len(kept)]["layer"])
        predict = with_float(set(kept))
    return {"max_accuracy_drop": max_drop_pts, "float_accuracy": float_acc, "kept_float": kept,
            "met": drop is None or drop <= max_drop_pts, "steps": steps}


# (only=layer | None, skip=frozenset of layers, calibration=sample count | None) -> (result, predict)
Quantize = Callable[..., tuple[Any, Predict]]


def rank_and_fall_back(quantize: Quantize, reference: Predict, layers: list[str], data: DataBundle,
                       budget: float | None, numerics: str, rank: bool = True) -> tuple[Any, dict[str, Any]]:
    """The whole recipe for one backend: quantize fully, rank layers, fall back under a budget. Returns the
    result to ship (fully quantized, or with the kept layers float) and the report notes. `rank=False`
    (`[quantization] sensitivity = false`) skips the ranking unless a budget needs it."""
    result, predict = quantize()
    if not rank and budget is None:
        return result, {}
    ranking = layer_sensitivity(reference, lambda name: quantize(only=name, calibration=RANKING_CALIBRATION)[1], data,
                                layers)
    notes: dict[str, Any] = {"sensitivity": {"method": method_text(numerics), "layers": ranking,
                                             "calibration_samples": min(RANKING_CALIBRATION, len(data.calibration))}}
    if budget is not None and ranking:
        kept: dict[str, Any] = {}

        def with_float(skip: set[str]) -> Predict:
            kept["result"], step_predict = quantize(skip=frozenset(skip))
            return step_predict

        notes["fallback"] = fallback(reference, predict, with_float, data, ranking, float(budget))
        if notes["fallback"]["kept_float"]:
            result = kept["result"]
    return result, notes
