"""The seeded training loop the built-in PyTorch examples share (first training and fine-tuning)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge_pipeline.building.cache import cache_root
from edge_pipeline.fsutil import atomic_path


def train_epochs(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, seed: int = 0, lr: float = 1e-3,
                 batch: int = 64) -> nn.Module:
    """Adam on cross-entropy, a seeded shuffle per epoch; returns the model in eval mode."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    inputs, labels = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(inputs), generator=generator)
        for start in range(0, len(inputs), batch):
            idx = order[start:start + batch]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(inputs[idx]), labels[idx]).backward()
            optimizer.step()
    return model.eval()


def cached_weights(name: str, model: nn.Module, train: Callable[[], nn.Module]) -> tuple[nn.Module, Path]:
    """The example's trained weights from the user cache dir, trained once (seeded) on first use."""
    weights = cache_root() / "examples" / f"{name}.pt"
    if weights.is_file():
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    else:
        model = train()
        with atomic_path(weights) as tmp:
            torch.save(model.state_dict(), tmp)
    return model.eval(), weights
