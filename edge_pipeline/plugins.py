"""The three plugin kinds. Built-ins in `quantization/` and `targets/` implement these like any third party."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np


@dataclass
class Model:
    """A live source model inside a worker: framework, object, example inputs, provenance."""

    framework: str
    module: Any
    example_inputs: tuple[Any, ...]
    provenance: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. a quantizer the exporter must see


@dataclass
class DataBundle:
    """Example, calibration and evaluation data as numpy arrays (single-input models)."""

    example: np.ndarray
    calibration: np.ndarray
    eval_inputs: np.ndarray
    eval_labels: np.ndarray | None


@runtime_checkable
class Transform(Protocol):
    """Rewrites a Model (pruning, quantization before or inside export)."""

    name: ClassVar[str]
    frameworks: ClassVar[tuple[str, ...]]
    needs_calibration: ClassVar[bool]

    def apply(self, model: Model, data: DataBundle) -> Model: ...


@runtime_checkable
class Exporter(Protocol):
    """Writes one artifact format from a Model. `precisions` maps precision -> transform name (or None)."""

    name: ClassVar[str]
    format: ClassVar[str]
    suffix: ClassVar[str]
    frameworks: ClassVar[tuple[str, ...]]
    precisions: ClassVar[dict[str, str | None]]
    runner: ClassVar[str]
    distributions: ClassVar[tuple[str, ...]]   # packages whose versions key the cache

    def export(self, model: Model, dest: Path) -> dict[str, Any]: ...


class Session(Protocol):
    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]: ...


@runtime_checkable
class Runner(Protocol):
    """Loads an artifact in its real runtime."""

    name: ClassVar[str]
    runtime: ClassVar[str]
    distribution: ClassVar[str]

    def open(self, path: Path, threads: int) -> Session: ...
