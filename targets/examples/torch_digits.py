"""The default example: a small CNN trained on the digits on first use, cached in the user cache dir."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edge_pipeline.plugins import DataBundle, Model
from edge_pipeline.types import JsonObject
from targets.examples.digits_data import load_digits_split
from targets.examples.training import cached_weights, train_epochs

VERSION = 1
EPOCHS = 15
SEED = 0


class DigitsCNN(nn.Module):
    """Two convolutions and two linear layers (38k params): enough weights for int8 to matter."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def train(train_x: np.ndarray, train_y: np.ndarray) -> DigitsCNN:
    torch.manual_seed(SEED)
    return train_epochs(DigitsCNN(), train_x, train_y, EPOCHS, SEED)


def load() -> tuple[Model, DataBundle]:
    """The `torch-digits` example (entry point `edgepipe.examples`): the trained CNN and the digits split."""
    split = load_digits_split()
    model, weights = cached_weights(f"torch-digits-v{VERSION}", DigitsCNN(),
                                    lambda: train(split.train_x, split.train_y))
    data = DataBundle.single("x", split.eval_x[:1], split.calib_x, split.eval_x, split.eval_y)
    provenance: JsonObject = {"kind": "example", "name": "torch-digits", "weights": str(weights),
                  "data": "sklearn.datasets.load_digits (1,797 images), seeded split 1257/180/360"}
    return Model("torch", model, (torch.from_numpy(data.example.arrays[0].copy()),), provenance,
                 input_names=data.example.names), data


def fine_tune(model: nn.Module, epochs: int = 8) -> nn.Module:
    """The example's fine-tune callback after pruning: a few epochs on the same training split, seeded."""
    split = load_digits_split()
    return train_epochs(model, split.train_x, split.train_y, epochs, SEED)
