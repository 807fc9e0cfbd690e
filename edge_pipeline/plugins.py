"""The three plugin kinds. Built-ins in `quantization/` and `targets/` implement these like any third party."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from .tensors import Tensors


@dataclass
class Model:
    """A live source model inside a worker: framework, object, example inputs, provenance."""

    framework: str
    module: Any
    example_inputs: tuple[Any, ...]
    provenance: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. a quantizer the exporter must see
    input_names: tuple[str, ...] = ()     # in the order `module` takes them positionally


@dataclass
class DataBundle:
    """Example, calibration and evaluation samples, one named array per model input (dtypes kept)."""

    example: Tensors
    calibration: Tensors
    eval_inputs: Tensors
    eval_labels: np.ndarray | None

    @classmethod
    def single(cls, name: str, example: np.ndarray, calibration: np.ndarray, eval_inputs: np.ndarray,
               eval_labels: np.ndarray | None) -> "DataBundle":
        """A single-input model's data (the built-in examples)."""
        one = lambda a: Tensors((name,), (np.ascontiguousarray(a),))   # noqa: E731
        return cls(one(example), one(calibration), one(eval_inputs), eval_labels)

    @property
    def batch(self) -> int:
        """The artifact's fixed batch size: the example inputs' leading dimension."""
        return len(self.example)


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
