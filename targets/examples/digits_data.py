"""scikit-learn's bundled 8x8 digits (1,797 real images) with a fixed, seeded split."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPLIT_SEED = 0
CALIBRATION_COUNT = 180
EVAL_COUNT = 360


@dataclass(frozen=True)
class Split:
    """An example's data (the digits, Fashion-MNIST): train, calibration and evaluation never overlap."""

    train_x: np.ndarray
    train_y: np.ndarray
    calib_x: np.ndarray
    eval_x: np.ndarray
    eval_y: np.ndarray


def load_digits_split() -> Split:
    """NCHW float32 in [0, 1]; train / calibration / eval never overlap."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(digits.target))
    images = np.ascontiguousarray((digits.images[order] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8))
    labels = digits.target[order].astype(np.int64)
    n_eval, n_cal = EVAL_COUNT, CALIBRATION_COUNT
    return Split(train_x=images[n_eval + n_cal:], train_y=labels[n_eval + n_cal:],
                       calib_x=images[n_eval:n_eval + n_cal], eval_x=images[:n_eval], eval_y=labels[:n_eval])
