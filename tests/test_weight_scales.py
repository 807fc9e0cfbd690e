"""A layer with small weights fed large activations, as the PP-OCRv4 detector's head (|w| <= 2.4e-4 against
+-2000 inputs): XNNPACK's and litert-torch's PT2E configs floor every per-channel weight scale at 2**-12, which
rounds those weights to 0 or +-1 and collapsed the detector's map. edgepipe's configs keep the exact scale
(quantization/pt2e_int8.py WEIGHT_EPS); the int8 model then holds in the runtime that ships it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edge_pipeline import registry
from edge_pipeline.measure.profiling import run_batches
from edge_pipeline.plugins import DataBundle, Exporter, Model, Runner
from edge_pipeline.tensors import order_inputs
from quantization.litert_int8 import LitertInt8
from quantization.sensitivity import torch_predict
from quantization.xnnpack_int8 import XnnpackInt8


class LoudThenQuiet(torch.nn.Module):
    """A feature map in the hundreds, then a head whose weights are ~1e-4: the output is a few units."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.features = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.head = torch.nn.Conv2d(16, 4, 3, padding=1)
        with torch.no_grad():
            self.features.weight.copy_(torch.randn(self.features.weight.shape, generator=generator) * 60)
            self.head.weight.copy_(torch.randn(self.head.weight.shape, generator=generator) * 1e-4)
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.head(torch.relu(self.features(x))))


def _model_and_data() -> tuple[Model, DataBundle]:
    rng = np.random.default_rng(0)
    calibration = rng.standard_normal((32, 3, 16, 16)).astype(np.float32)
    evaluation = rng.standard_normal((16, 3, 16, 16)).astype(np.float32)
    module = LoudThenQuiet().eval()
    data = DataBundle.single("x", calibration[:1], calibration, evaluation, None)
    return Model("torch", module, (torch.from_numpy(calibration[:1]),), {}, ("x",)), data


def _sqnr_db(reference: np.ndarray, outputs: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference ** 2) / max(np.sum((reference - outputs) ** 2), 1e-30)))


@pytest.mark.parametrize(("backend", "exporter", "runner"), [(XnnpackInt8, "pte", "executorch"),
                                                            (LitertInt8, "tflite", "litert")],
                         ids=["pte", "tflite"])
def test_small_weights_against_large_activations_keep_their_int8_values(backend: type, exporter: str, runner: str,
                                                                        tmp_path: Path) -> None:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    model, data = _model_and_data()
    reference = torch_predict(model.module, data.batch)(data.eval_inputs)
    assert np.abs(reference).max() > 0.5                     # the head's output is not negligible

    prepared = prepare_pt2e(torch.export.export(model.module, model.example_inputs).module(), _vendor(backend))
    calibration = data.calibration.arrays[0]
    with torch.no_grad():
        for i in range(len(calibration)):
            prepared(torch.from_numpy(calibration[i:i + 1]))
    vendor = torch_predict(convert_pt2e(prepared), data.batch)(data.eval_inputs)
    assert _sqnr_db(reference, vendor) < 6                   # the vendor's floor loses the head's weights

    quantized, _ = backend().candidates(model, data, "histogram", None).quantize()
    path = tmp_path / f"model.{exporter}"
    registry.create(Exporter, exporter).export(quantized, path)
    session = registry.create(Runner, runner).open(path, 1)
    shipped = run_batches(session, order_inputs(session.input_specs, data.eval_inputs), 1)[0]
    assert _sqnr_db(reference, shipped) > 25, _sqnr_db(reference, shipped)


def _vendor(backend: type) -> object:
    """The backend's PT2E quantizer exactly as its vendor documents it (per-channel symmetric)."""
    if backend is XnnpackInt8:
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )

        return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    from litert_torch.quantize import pt2e_quantizer

    return pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True))
