"""Feeds calibration samples through an observed model, in the artifact's batch size."""
from __future__ import annotations

from typing import Any

from edge_pipeline.tensors import Tensors


def calibrate(observed: Any, calibration: Tensors, batch: int) -> int:
    """Runs every whole batch of `calibration` (every input); returns how many samples were seen."""
    import torch

    seen = 0
    with torch.no_grad():
        for part in calibration.batches(batch):
            observed(*(torch.from_numpy(a) for a in part))
            seen += batch
    return seen
