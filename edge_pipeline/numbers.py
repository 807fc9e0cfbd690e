"""The one check every threshold, budget and metric figure passes where it enters: a finite number in its
documented range. NaN compares false with everything, so a NaN limit would read as "met" and a NaN metric as
"no drop": both are refused here, naming the key, before any work."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge_pipeline.errors import ConfigError


@dataclass(frozen=True)
class Range:
    """Where a figure is meaningful: [low, high], with an open low end for sizes and times (> 0)."""

    low: float
    high: float = math.inf
    low_open: bool = False

    def holds(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high

    def __str__(self) -> str:
        low = f"> {self.low:g}" if self.low_open else f">= {self.low:g}"
        return low if math.isinf(self.high) else f"{low} and <= {self.high:g}"


POSITIVE = Range(0.0, low_open=True)
FRACTION = Range(0.0, 1.0)
PERCENTAGE_POINTS = Range(0.0, 100.0)
DECIBELS = Range(-100.0, 300.0)


def finite(value: object, where: str, valid: Range) -> float:
    """`value` as a float that is finite and in `valid`; else a one-line ConfigError naming `where`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise ConfigError(f"{where} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    if not valid.holds(number):
        raise ConfigError(f"{where} must be {valid}, got {value!r}")
    return number


def is_finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


@dataclass
class SignalNoise:
    """Signal and error energy summed over many calls: one SQNR for a tensor seen call after call, without
    keeping its values."""

    signal: float = 0.0
    noise: float = 0.0

    def add(self, reference: np.ndarray, test: np.ndarray) -> None:
        ref = np.asarray(reference, dtype=np.float64)
        self.signal += float(np.sum(ref ** 2))
        self.noise += float(np.sum((ref - np.asarray(test, dtype=np.float64)) ** 2))

    def sqnr_db(self) -> float | None:
        """10 log10(signal energy / error energy); None when it is undefined: identical outputs (no error) or an
        all-zero reference (no signal to normalise by), or a non-finite energy. JSON has no infinity."""
        if self.signal == 0.0 or self.noise == 0.0 or not math.isfinite(self.signal / self.noise):
            return None
        return round(10 * math.log10(self.signal / self.noise), 2)
