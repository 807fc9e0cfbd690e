"""Runners open an artifact in its real runtime; a Session is one opened artifact. Every optional member has a
real default here, so the measure stage reads them plainly."""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

from edge_pipeline.plugins.contract import Plugin
from edge_pipeline.tensors import Tensors, TensorSpec
from edge_pipeline.types import JsonObject


class Session(ABC):
    """An opened artifact. Instance attributes may override the class defaults below once the runtime is open."""

    input_specs: list[TensorSpec] | None = None   # the artifact's own inputs, when its runtime says
    output_names: list[str] | None = None         # its outputs' names in the order `run` returns them
    runtime_label: str | None = None              # e.g. "TF.js wasm" (None: the runner's `runtime`)
    runtime_version: str | None = None            # None: the runner distribution's version
    cores: int | None = None                      # the device's cores, when it is not this host
    device_label: str | None = None               # where it runs, when not this host (ssh board, a bench label)
    times_itself: bool = False                    # True: `benchmark` times inside the runtime (another process)

    @abstractmethod
    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """One call: inputs in the artifact's order, raw outputs in `output_names` order."""

    def benchmark(self, inputs: list[np.ndarray], warmup: int, runs: int) -> np.ndarray:
        """Per-run milliseconds timed by the runtime itself (only when `times_itself`)."""
        raise NotImplementedError(f"{type(self).__name__} does not time itself")

    def run_batches(self, inputs: Tensors, batch: int) -> list[np.ndarray] | None:
        """Every sample in one call where the runtime can (a remote device); None: call `run` per batch."""
        return None


class Runner(Plugin):
    """`suffixes`: file suffix (or a file inside a folder artifact) -> format, so `edgepipe profile` finds the
    runner of a file. `variants`: runtime backends measured one after another (the first validates)."""

    kind: ClassVar[str] = "runner"
    runtime: ClassVar[str]
    distribution: ClassVar[str]
    variants: ClassVar[tuple[str | None, ...]] = (None,)
    suffixes: ClassVar[dict[str, str]] = {}
    in_process: ClassVar[bool] = True     # False: the runtime runs in a child process (its memory is not ours)

    @classmethod
    def declaration_problems(cls) -> list[str]:
        return ["'variants' is empty"] if not cls.variants else []

    @abstractmethod
    def open(self, path: Path, threads: int, variant: str | None = None) -> Session:
        """The artifact loaded with `threads` threads (and the runtime backend `variant`)."""

    def preload(self) -> None:
        """Imports the runtime before memory is measured, so its import is not counted as the model's."""

    def signature(self, path: Path) -> JsonObject | None:
        """The tensors as an app must encode them (dtype, scale, zero point); None: the runtime cannot say."""
        return None

    def op_profile(self, path: Path, sample: list[np.ndarray], runs: int) -> JsonObject | None:
        """Per-op times `{"source": ..., "ops": [{"op", "avg_ms", ...}]}`; None: the runtime cannot profile."""
        return None

    def bundle_files(self) -> dict[str, Path]:
        """Files a sample app vendors to run this format (relative path -> source)."""
        return {}
