"""Per-layer int8 sensitivity and accuracy-budgeted fallback for PT2E (XNNPACK) quantization.

Sensitivity: for each quantizable layer (Conv/Linear, by its name in the source model), quantize *only that
layer* with the same quantizer and calibration data, run the converted model (PT2E's reference q/dq numerics)
on evaluation samples and measure the SQNR of its output against the float model's: the lower, the more that
layer alone hurts. Fallback (NNCF's accuracy-control idea): when the fully quantized model loses more top-1
accuracy than `max-accuracy-drop`, keep the most sensitive layers in float, one at a time, until the budget
holds; the layers kept are recorded.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from edge_pipeline.plugins import DataBundle

MAX_LAYERS = 24        # larger models: the 24 layers with the most weights are ranked (each costs a calibration)
EVAL_SAMPLES = 128


def quantizable_layers(module: Any) -> list[str]:
    import torch

    layers = [(name, sum(p.numel() for p in m.parameters(recurse=False)))
              for name, m in module.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv1d, torch.nn.Linear))]
    if len(layers) > MAX_LAYERS:
        keep = {n for n, _ in sorted(layers, key=lambda item: -item[1])[:MAX_LAYERS]}
        layers = [item for item in layers if item[0] in keep]
    return [name for name, _ in layers]


def run_module(module: Any, inputs: np.ndarray, batch: int) -> np.ndarray:
    import torch

    outputs = []
    with torch.no_grad():
        for start in range(0, (len(inputs) // batch) * batch, batch):
            out = module(torch.from_numpy(np.ascontiguousarray(inputs[start:start + batch])))
            while isinstance(out, (tuple, list)):
                out = out[0]
            outputs.append(out.detach().numpy())
    return np.concatenate(outputs).astype(np.float32)


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    noise = float(np.sum((reference - test) ** 2))
    signal = float(np.sum(reference ** 2))
    return float("inf") if noise == 0 else round(float(10 * np.log10(signal / noise)), 2)


def top1(outputs: np.ndarray, labels: np.ndarray | None) -> float | None:
    return None if labels is None or len(labels) == 0 else float((outputs.argmax(axis=1) == labels[:len(outputs)]).mean())


SENSITIVITY_METHOD = ("SQNR of the model's output with only that layer (and its fused activation) int8, vs the "
                      "float model, PT2E reference numerics on eval samples: the lower, the more that layer hurts")


def layer_sensitivity(float_module: Any, quantize_only: Callable[[str], Any], data: DataBundle,
                      layers: list[str]) -> list[dict[str, Any]]:
    """`quantize_only(layer)` returns the converted model with only that layer int8. Most sensitive first."""
    batch = data.example.shape[0]
    inputs = data.eval_inputs[:EVAL_SAMPLES]
    reference = run_module(float_module, inputs, batch)
    rows = []
    for name in layers:
        out = run_module(quantize_only(name), inputs, batch)
        rows.append({"layer": name, "sqnr_db": sqnr_db(reference, out),
                     "agreement": float((out.argmax(axis=1) == reference.argmax(axis=1)).mean())})
    return sorted(rows, key=lambda r: r["sqnr_db"])


def fallback(float_module: Any, int8_module: Any, quantize: Callable[[set[str]], Any], data: DataBundle,
             ranking: list[dict[str, Any]], max_drop_pts: float) -> tuple[Any, dict[str, Any]]:
    """Keeps the most sensitive layers float until the top-1 drop (on the eval split) is within budget."""
    batch = data.example.shape[0]
    float_acc = top1(run_module(float_module, data.eval_inputs, batch), data.eval_labels)
    kept: list[str] = []
    steps = []
    converted = int8_module
    while True:
        acc = top1(run_module(converted, data.eval_inputs, batch), data.eval_labels)
        drop = None if acc is None or float_acc is None else round((float_acc - acc) * 100, 4)
        steps.append({"kept_float": list(kept), "accuracy": acc, "drop_pts": drop})
        if drop is None or drop <= max_drop_pts or len(kept) == len(ranking):
            break
        kept.append(ranking[len(kept)]["layer"])
        converted = quantize(set(kept))
    return converted, {"max_accuracy_drop": max_drop_pts, "float_accuracy": float_acc, "kept_float": kept,
                       "met": drop is None or drop <= max_drop_pts, "steps": steps}
