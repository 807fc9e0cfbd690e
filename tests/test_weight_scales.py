"""A layer with small weights fed large activations, as the PP-OCRv4 detector's head (|w| <= 2.4e-4 against
+-2000 inputs): XNNPACK's and litert-torch's PT2E configs floor every per-channel weight scale at 2**-12, which
leaves such weights 0 or +-1 and collapsed the detector's map. edgepipe's configs keep the exact scale
(quantization/pt2e_int8.py WEIGHT_EPS), and that alone is what changes: the int8 model then holds in the runtime
that ships it."""
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
from quantization.pt2e_int8 import WEIGHT_EPS
from quantization.sensitivity import sqnr_db, torch_predict
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


@pytest.mark.parametrize(("backend", "exporter", "runner"), [(XnnpackInt8, "pte", "executorch"),
                                                            (LitertInt8, "tflite", "litert")],
                         ids=["pte", "tflite"])
def test_small_weights_against_large_activations_hold_in_the_shipped_int8_file(backend: type, exporter: str,
                                                                               runner: str, tmp_path: Path) -> None:
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
    assert sqnr_db(reference, vendor) < 6                    # the vendor's floor loses the head's weights

    quantized, _ = backend().candidates(model, data, "histogram", None).quantize()
    path = tmp_path / f"model.{exporter}"
    registry.create(Exporter, exporter).export(quantized, path)
    session = registry.create(Runner, runner).open(path, 1)
    shipped = run_batches(session, order_inputs(session.input_specs, data.eval_inputs), 1)[0]
    assert sqnr_db(reference, shipped) > 25, sqnr_db(reference, shipped)


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


@pytest.mark.parametrize("backend", [XnnpackInt8, LitertInt8], ids=["xnnpack", "litert"])
@pytest.mark.parametrize("method", ["histogram", "minmax"])
def test_the_configs_change_the_weight_floor_and_the_asked_observer_only(backend: type, method: str) -> None:
    """What edgepipe changes in the vendor's config: the weight observers' eps, and for `minmax` the activation
    observers' class (the vendor's eps kept); everything else is the vendor's."""
    from torch.fx import GraphModule
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    model, _ = _model_and_data()
    quantizer = backend().quantizer(lambda _: True, method)
    prepared = prepare_pt2e(torch.export.export(model.module, model.example_inputs).module(), quantizer)
    assert isinstance(prepared, GraphModule)
    observers = [m for m in prepared.modules() if type(m).__name__.endswith("Observer")]
    weights = [o for o in observers if "PerChannel" in type(o).__name__]
    activations = [o for o in observers if o not in weights]
    assert len(weights) == 2 and activations
    assert all(float(o.eps) == WEIGHT_EPS for o in weights)
    assert {type(o).__name__ for o in activations} == {"MinMaxObserver" if method == "minmax" else
                                                       "HistogramObserver"}
    assert all(float(o.eps) == 2.0 ** -12 for o in activations)
