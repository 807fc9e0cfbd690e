"""A bigger built-in example: Fashion-MNIST (60k/10k real 28x28 images) from Debian's `dataset-fashion-mnist`
package, with a small MobileNet-style CNN (depthwise-separable blocks) trained on first use and cached.
Nothing is downloaded: without the package the example says how to install it."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge_pipeline.errors import InputError
from edge_pipeline.plugins import DataBundle, Model
from edge_pipeline.types import JsonObject
from targets.examples.digits_data import Split
from targets.examples.training import cached_weights, train_epochs

DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
VERSION = 1
SEED = 0
EPOCHS = 3
CALIBRATION_COUNT = 512
EVAL_COUNT = 2000      # of the 10k test images: every artifact runs them one at a time through its runtime


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    """Depthwise 3x3 + pointwise 1x1, each with BatchNorm and ReLU (MobileNet v1)."""
    return nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(),
                         nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class FashionNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                                      _block(32, 64, 1), _block(64, 128, 2), _block(128, 128, 1), _block(128, 256, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def _idx(name: str) -> np.ndarray:
    path = DATA_DIR / name
    if not path.is_file():
        raise InputError(f"the fashion-mnist example needs Debian's dataset-fashion-mnist package ({path} is "
                         f"missing): apt-get install dataset-fashion-mnist")
    raw = gzip.decompress(path.read_bytes())
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_split() -> Split:
    """Train minus the last CALIBRATION_COUNT images (those calibrate); eval is the head of the test set."""
    def images(name: str) -> np.ndarray:
        return np.ascontiguousarray((_idx(name) / 255.0).astype(np.float32)[:, None])

    train_x, train_y = images("train-images-idx3-ubyte.gz"), _idx("train-labels-idx1-ubyte.gz").astype(np.int64)
    test_x, test_y = images("t10k-images-idx3-ubyte.gz"), _idx("t10k-labels-idx1-ubyte.gz").astype(np.int64)
    return Split(train_x=train_x[:-CALIBRATION_COUNT], train_y=train_y[:-CALIBRATION_COUNT],
                       calib_x=train_x[-CALIBRATION_COUNT:], eval_x=test_x[:EVAL_COUNT], eval_y=test_y[:EVAL_COUNT])


def load() -> tuple[Model, DataBundle]:
    """The `fashion-mnist` example: the trained FashionNet (cached) and the data split."""
    split = load_split()

    def train() -> nn.Module:
        torch.manual_seed(SEED)
        return train_epochs(FashionNet(), split.train_x, split.train_y, EPOCHS, SEED, batch=128)

    model, weights = cached_weights(f"fashion-mnist-v{VERSION}", FashionNet(), train)
    data = DataBundle.single("x", split.eval_x[:1], split.calib_x, split.eval_x, split.eval_y)
    provenance: JsonObject = {"kind": "example", "name": "fashion-mnist", "weights": str(weights),
                  "data": f"Fashion-MNIST ({DATA_DIR}): train 59,488, calibration {CALIBRATION_COUNT}, "
                          f"eval the first {EVAL_COUNT} test images"}
    return Model("torch", model, (torch.from_numpy(data.example.arrays[0].copy()),), provenance,
                 input_names=data.example.names), data


def fine_tune(model: nn.Module, epochs: int = 1) -> nn.Module:
    """Fine-tune callback after pruning: one seeded epoch on the training split."""
    split = load_split()
    return train_epochs(model, split.train_x, split.train_y, epochs, SEED, batch=128)
