"""Feeds calibration samples through an observed model, in the artifact's batch size."""
from __future__ import annotations

from typing import Any

import numpy as np


def calibrate(observed: Any, calibration: np.ndarray, batch: int) -> int:
    """Runs every whole batch of `calibration`; returns how many samples were seen."""
    import torch

    usable = (len(calibration) // batch) * batch
    with torch.no_grad():
        for start in range(0, usable, batch):
            observed(torch.from_numpy(np.ascontiguousarray(calibration[start:start + batch])))
    return usable
