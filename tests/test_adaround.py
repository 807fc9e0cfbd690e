"""AdaRound with bias correction (`[quantization] algorithms = ["adaround"]`, quantization/adaround.py) on a
MobileNetV2-style residual network, with each PT2E backend's own quantizer: the rounding it picks brings the int8
model closer to float than nearest rounding does, and it keeps the quantizer's grid (same scales), so the backend
lowers the result exactly as before; only integers and biases change."""
from __future__ import annotations

from operator import attrgetter

import numpy as np
import pytest
import torch

from edge_pipeline.plugins import DataBundle, Model
from quantization.litert_int8 import LitertInt8
from quantization.sensitivity import torch_predict
from quantization.xnnpack_int8 import XnnpackInt8

from .test_fallback_regions import RESIDUAL_NET


def _residual() -> tuple[Model, DataBundle]:
    namespace: dict[str, object] = {}
    exec(compile(RESIDUAL_NET, "residual_net", "exec"), namespace)
    module = namespace["make"]()
    images, labels = namespace["evaluate"]()[0]
    data = DataBundle.single("x", namespace["example"](), namespace["calibration"]()[0], images, labels)
    return Model("torch", module, (torch.from_numpy(data.example.arrays[0]),), {}, ("x",)), data


def _sqnr_db(reference: np.ndarray, outputs: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference ** 2) / max(np.sum((reference - outputs) ** 2), 1e-30)))


def _grid(module: torch.fx.GraphModule) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per-channel weight scales and int8 weights of a converted graph, in graph order (folded into int8 constants
    as XNNPACK's is, or float weights and their quantize node as litert-torch's)."""
    scales, integers = [], []
    for node in module.graph.nodes:
        if node.op == "call_function" and "dequantize_per_channel" in str(node.target):
            source, scale = node.args[0], attrgetter(node.args[1].target)(module)
            if source.op == "get_attr":
                integers.append(attrgetter(source.target)(module))
            else:
                weight = attrgetter(source.args[0].target)(module)
                integers.append(torch.round(weight / scale.reshape(-1, *[1] * (weight.dim() - 1))))
            scales.append(scale)
    return scales, integers


@pytest.mark.parametrize("backend", [XnnpackInt8, LitertInt8], ids=["xnnpack", "litert"])
def test_adaround_moves_int8_toward_float_on_the_same_grid(backend: type) -> None:
    model, data = _residual()
    reference = torch_predict(model.module, data.batch)(data.eval_inputs)
    results = {}
    for algorithms in ((), ("adaround",)):
        quantized, predict = backend().candidates(model, data, "histogram", None, algorithms).quantize()
        results[algorithms] = quantized, predict(data.eval_inputs)
    (plain, plain_out), (rounded, rounded_out) = results[()], results[("adaround",)]
    rounding = rounded.provenance["quantization"]["rounding"]
    assert rounding["layers"] > 0
    assert rounding["relative_output_error_after"] < rounding["relative_output_error_before"]
    assert _sqnr_db(reference, rounded_out) > _sqnr_db(reference, plain_out)     # on held-out images, not calibration
    plain_scales, plain_integers = _grid(plain.module)
    scales, integers = _grid(rounded.module)
    assert len(scales) == len(plain_scales) > 0
    assert all(torch.equal(a, b) for a, b in zip(scales, plain_scales))          # the grid is the quantizer's
    assert any(not torch.equal(a, b) for a, b in zip(integers, plain_integers))  # the integers are re-picked
