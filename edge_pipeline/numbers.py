"""The one check every threshold, budget and metric figure passes where it enters: a finite number in its
documented range. NaN compares false with everything, so a NaN limit would read as "met" and a NaN metric as
"no drop": both are refused here, naming the key, before any work."""
from __future__ import annotations

import math
from dataclasses import dataclass

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
