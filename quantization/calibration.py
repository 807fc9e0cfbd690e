"""Feeds calibration samples through an observed model, in the artifact's batch size, and picks the calibration
method a transform runs with."""
from __future__ import annotations

from typing import TYPE_CHECKING

from edge_pipeline.plugins import QuantizeSettings, Transform
from edge_pipeline.tensors import Tensors

if TYPE_CHECKING:
    import torch


def calibration_method(transform: Transform, settings: QuantizeSettings) -> str:
    """The `[quantization] calibration-method` asked for, else the transform's default: the first it offers."""
    return settings.calibration_method or type(transform).calibration_methods[0]


def calibration_batches(calibration: Tensors, batch: int) -> list[tuple[torch.Tensor, ...]]:
    """Every whole batch of `calibration`, as torch tensors."""
    import torch

    return [tuple(torch.from_numpy(a) for a in part) for part in calibration.batches(batch)]


def calibrate(observed: torch.nn.Module, calibration: Tensors, batch: int) -> int:
    """Runs every whole batch of `calibration` (every input); returns how many samples were seen."""
    import torch

    seen = 0
    with torch.no_grad():
        for part in calibration.batches(batch):
            observed(*(torch.from_numpy(a) for a in part))
            seen += batch
    return seen
