"""The fallback's search space is every quantized operation, in regions, and each candidate is measured as the
artifact that ships (issue 20). On a MobileNetV2-style residual network (inverted residual blocks, ReLU6,
residual adds, global pooling), for each PT2E backend:
- every region float is the float model: the shipped candidate agrees with the fp32 artifact of the same
  route on every sample, to float rounding (the weighted layers alone could not get there: residual adds and
  activation quantizers stayed int8);
- the regions cover the adds and pooling, not only the weighted layers;
- a build whose budget forces a fallback ships exactly the file it verified (same bytes, same drop)."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edge_pipeline import registry
from edge_pipeline.building.shipping import Shipper
from edge_pipeline.plugins import DataBundle, Exporter, Model, QuantizeSettings, Runner, Transform
from edge_pipeline.tensors import order_inputs
from quantization.pt2e_regions import annotated_nodes
from quantization.sensitivity import torch_predict

from .conftest import run_cli

RESIDUAL_NET = '''
import numpy as np
import torch
from torch import nn


class Block(nn.Module):
    """An inverted residual block: 1x1 expand, 3x3 depthwise, 1x1 project, and the residual add."""

    def __init__(self, channels: int):
        super().__init__()
        wide = channels * 4
        self.expand = nn.Sequential(nn.Conv2d(channels, wide, 1, bias=False), nn.BatchNorm2d(wide), nn.ReLU6())
        self.depthwise = nn.Sequential(nn.Conv2d(wide, wide, 3, padding=1, groups=wide, bias=False),
                                       nn.BatchNorm2d(wide), nn.ReLU6())
        self.project = nn.Sequential(nn.Conv2d(wide, channels, 1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x):
        return x + self.project(self.depthwise(self.expand(x)))


class ResidualNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU6())
        self.blocks = nn.Sequential(Block(16), Block(16), Block(16))
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


def make():
    torch.manual_seed(0)
    net = ResidualNet()
    generator = torch.Generator().manual_seed(1)
    for module in net.modules():      # BN statistics of a trained net: folded scales far from 1
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1, generator=generator)
            module.running_var.uniform_(0.2, 4, generator=generator)
            module.weight.data.uniform_(0.2, 3, generator=generator)
    net.blocks[2].project[1].bias.data[0] = 400.0   # an outlier channel in the residual stream, as trained nets have
    return net.eval()


def _images(seed, n):
    return np.random.default_rng(seed).standard_normal((n, 3, 32, 32)).astype(np.float32)


def example():
    return _images(0, 8)


def calibration():
    return [_images(1, 64)]


def evaluate():
    images = _images(2, 128)
    with torch.no_grad():
        labels = make()(torch.from_numpy(images)).argmax(1).numpy()   # the float model's own top-1
    return [(images, labels)]
'''
BACKENDS = {"pte": ("xnnpack-int8", "executorch", ".pte"), "tflite": ("litert-int8", "litert", ".tflite")}


@pytest.fixture(scope="module")
def residual(tmp_path_factory: pytest.TempPathFactory) -> tuple[Model, DataBundle]:
    namespace: dict[str, object] = {}
    exec(compile(RESIDUAL_NET, "residual_net", "exec"), namespace)   # the same module the build test imports
    module = namespace["make"]()
    images = namespace["evaluate"]()[0]
    data = DataBundle.single("x", namespace["example"](), namespace["calibration"]()[0], images[0], images[1])
    example = torch.from_numpy(data.example.arrays[0])
    return Model("torch", module, (example,), {"kind": "factory"}, ("x",)), data


def _shipper(exporter: str, transform: str, runner: str, suffix: str, data: DataBundle, folder: Path) -> Shipper:
    recipe = registry.create(Exporter, exporter).recipe(None, registry.create(Transform, transform))
    index = next(i for i, step in enumerate(recipe.steps) if step.tool == transform)
    return Shipper(recipe.steps[index + 1:], runner, data, QuantizeSettings(), folder, suffix)


def _float_artifact(exporter: str, runner: str, suffix: str, model: Model, data: DataBundle, path: Path) -> np.ndarray:
    registry.create(Exporter, exporter).export(model, path.with_suffix(suffix))
    session = registry.create(Runner, runner).open(path.with_suffix(suffix), 1)
    from edge_pipeline.measure.profiling import run_batches

    return run_batches(session, order_inputs(session.input_specs, data.eval_inputs), data.batch)[0]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_every_region_float_is_the_float_model(backend: str, residual: tuple[Model, DataBundle],
                                               tmp_path: Path) -> None:
    model, data = residual
    transform, runner, suffix = BACKENDS[backend]
    candidates = registry.create(Transform, transform).candidates(
        model, data, "histogram", _shipper(backend, transform, runner, suffix, data, tmp_path / "ship"))
    members = set().union(*candidates.regions.values())
    quantizer = registry.create(Transform, transform).quantizer(lambda _: True, "histogram")
    assert set(annotated_nodes(candidates.captured, quantizer)) <= members      # every quantized op is in a region
    if backend == "pte":   # XNNPACK quantizes the residual adds and the pooling too: they are in regions
        assert {"add", "add_1", "add_2", "mean"} <= members, members
    assert len(candidates.regions) == 11          # stem + 3 blocks x 3 convs + head, each with what it reads
    float_out = _float_artifact(backend, runner, suffix, model, data, tmp_path / "fp32")
    _, all_float = candidates.quantize(frozenset(candidates.regions))
    outputs = all_float(data.eval_inputs)
    assert np.array_equal(outputs.argmax(1), float_out.argmax(1))   # agreement 1.0: float accuracy, exactly
    noise = float(np.sum((outputs - float_out) ** 2)) / float(np.sum(float_out ** 2))
    assert noise < 1e-9, noise                                        # > 90 dB: float rounding, nothing quantized
    _, int8 = candidates.quantize()
    reference = torch_predict(model.module, data.batch)(data.eval_inputs)
    assert not np.array_equal(int8(data.eval_inputs), reference)      # and fully quantized it is not float


def test_a_budgeted_fallback_ships_the_file_it_verified(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "residual_net.py").write_text(RESIDUAL_NET)
    (tmp_path / "edgepipe.toml").write_text(textwrap.dedent("""\
        model = "residual_net:make"
        example-inputs = "residual_net:example"
        calibration = "residual_net:calibration"
        evaluate = "residual_net:evaluate"
        [targets.android]
        formats = ["pte:int8"]
        """))
    proc = run_cli("build", "--out", str(tmp_path / "out"), "--json", "--budget", "max-accuracy-drop=0",
                   "--sensitivity", "always", cwd=tmp_path)
    report = json.loads(proc.stdout)
    (artifact,) = report["artifacts"]
    quantization = artifact["export"]["metadata"]["quantization"]
    assert quantization["verified_on"].startswith("the artifact that ships"), quantization
    fallback = quantization["fallback"]
    assert fallback["met"] and artifact["status"] == "ok", (fallback, artifact.get("error"))
    shipped = fallback["steps"][-1]
    assert artifact["accuracy_drop"] == pytest.approx(shipped["drop_pts"], abs=1e-6)   # what was verified ships
    assert 0 < fallback["float_weight_share"] < 1 and fallback["steps"][0]["drop_pts"] > 50   # int8 collapses
    assert "head" in fallback["kept_float"]   # the region of the last residual add and the pooling: now reachable
