"""The default example: a small CNN trained on the digits on first use, cached in the user cache dir."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..cache import cache_root
from ..fsutil import atomic_path
from ..plugins import DataBundle, Model
from .digits_data import load_digits_split
from .training import train_epochs

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
    split = load_digits_split()
    weights = cache_root() / "examples" / f"torch-digits-v{VERSION}.pt"
    model = DigitsCNN()
    if weights.is_file():
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    else:
        model = train(split.train_x, split.train_y)
        with atomic_path(weights) as tmp:
            torch.save(model.state_dict(), tmp)
    model.eval()
    data = DataBundle(example=split.eval_x[:1].copy(), calibration=split.calib_x,
                      eval_inputs=split.eval_x, eval_labels=split.eval_y)
    provenance = {"kind": "example", "name": "torch-digits", "weights": str(weights),
                  "data": "sklearn.datasets.load_digits (1,797 images), seeded split 1257/180/360"}
    return Model("torch", model, (torch.from_numpy(data.example.copy()),), provenance), data


def fine_tune(model: nn.Module, epochs: int = 8) -> nn.Module:
    """The example's fine-tune callback after pruning: a few epochs on the same training split, seeded."""
    split = load_digits_split()
    return train_epochs(model, split.train_x, split.train_y, epochs, SEED)
