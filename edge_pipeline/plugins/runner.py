"""Runners open an artifact in its real runtime; a Session is one opened artifact. Every optional member has a
real default here, so the measure stage reads them plainly."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
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
    serves_requests: bool = False                 # True: a server; `run` may be called from many threads at once
                                                  # and the artifact is load-tested (measure.load_test)

    @abstractmethod
    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """One call: inputs in the artifact's order, raw outputs in `output_names` order."""

    def benchmark(self, inputs: list[np.ndarray], warmup: int, runs: int) -> np.ndarray:
        """Per-run milliseconds timed by the runtime itself (only when `times_itself`)."""
        raise NotImplementedError(f"{type(self).__name__} does not time itself")

    def resident_mb(self) -> float | None:
        """Resident memory of the process(es) running the artifact when they are not this one (a server)."""
        return None

    def close(self) -> None:
        """Releases what the session holds outside this process (a server, a child runtime); the measure stage
        calls it when done, so nothing it started outlives the measurement."""

    def run_batches(self, inputs: Tensors, batch: int) -> list[np.ndarray] | None:
        """Every sample in one call where the runtime can (a remote device); None: call `run` per batch."""
        return None


@dataclass(frozen=True)
class GreedyRun:
    """A greedy continuation stepped through the artifact one call at a time, as an app's loop would."""

    tokens: tuple[int, ...]           # the continuation, not the prompt
    first_token_s: float              # prefill of the prompt and the first token's logits
    decode_s: tuple[float, ...]       # each later token's call


@dataclass(frozen=True)
class LoopRun:
    """The runtime's own generation loop on one prompt: its text, the text stepping gave, its own clock."""

    text: str
    expected_text: str
    generated_tokens: int
    first_token_ms: float | None
    decode_tokens_per_s: float | None


class DecoderSession(ABC):
    """An opened language-model artifact (a decoder with its KV cache inside): teacher-forced logits, greedy
    stepping, and the runtime's own generation loop where it has one."""

    eos_ids: tuple[int, ...] = ()
    max_context: int = 0
    runtime_loop: str | None = None               # the loop `run_loop` drives (None: the runtime has none)
    device_label: str | None = None               # where it runs when not on this host ("device ssh://...")
    cores: int | None = None                      # that device's cores (None: this host's)
    load_ms: float | None = None                  # the program's load, timed where it runs (None: opening it)
    runtime_version: str | None = None            # the runtime's version where it runs (None: this host's package)

    @abstractmethod
    def logits(self, ids: np.ndarray) -> np.ndarray:
        """Teacher-forced logits of every position of `ids` (positions x vocabulary), from cache position 0."""

    @abstractmethod
    def greedy(self, prompt: np.ndarray, new_tokens: int) -> GreedyRun:
        """Prefill `prompt`, then decode greedily through the cache; stops after an EOS id."""

    def run_loop(self, prompt: np.ndarray, new_tokens: int, expected: tuple[int, ...]) -> LoopRun | None:
        """The runtime's own loop (an app's) on `prompt`; `expected`: the tokens stepping gave."""
        return None

    def render_chat(self, messages: tuple[dict[str, str], ...]) -> str | None:
        """`messages` rendered by the runtime with the chat template the artifact ships, the assistant's
        generation prompt after them (None: the runtime renders no templates, or the artifact ships none)."""
        return None

    def close(self) -> None:
        """Releases what the session holds outside this process (a process on a board); called when done."""


@dataclass(frozen=True)
class GraphView:
    """How Model Explorer draws a runner's artifacts: `adapter`, its extension that reads the file; `extension`,
    the Python module that provides that adapter (None: built into Model Explorer); `suffixes`, the artifact
    files it reads (a runner may run more formats than Model Explorer reads)."""

    adapter: str
    suffixes: tuple[str, ...]
    extension: str | None = None


class Runner(Plugin):
    """`suffixes`: file suffix (or a file inside a folder artifact) -> format, so `edgepipe profile` finds the
    runner of a file. `variants`: runtime backends measured one after another (the first validates)."""

    kind: ClassVar[str] = "runner"
    runtime: ClassVar[str]
    distribution: ClassVar[str]
    variants: ClassVar[tuple[str | None, ...]] = (None,)
    suffixes: ClassVar[dict[str, str]] = {}
    in_process: ClassVar[bool] = True     # False: the runtime runs in a child process (its memory is not ours)
    graph_view: ClassVar[GraphView | None] = None   # None: Model Explorer cannot draw this format

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
        """Per-op times `{"source": ..., "ops": [{"op", "avg_ms", "node"?, ...}]}` (`node`: the op's node id in
        `graph_view`'s graph); None: the runtime cannot profile."""
        return None

    def node_precisions(self, path: Path) -> dict[str, str]:
        """Graph node id -> the type it computes in ("int8", "float32", ...; "convert" for (de)quantizers)."""
        return {}

    def node_errors(self, path: Path, reference: Path, calls: list[list[np.ndarray]]) -> dict[str, float]:
        """Graph node id -> SQNR (dB) of its output against the same tensor of `reference` (the float artifact
        of the same format), over `calls` (inputs in this artifact's order); {}: no tensor can be matched."""
        return {}

    def open_decoder(self, path: Path, threads: int) -> DecoderSession:
        """A language-model artifact opened for generation (runners of `text-generation` artifacts)."""
        raise NotImplementedError(f"the {self.name} runner does not run language models")

    def bundle_files(self) -> dict[str, Path]:
        """Files a sample app vendors to run this format (relative path -> source)."""
        return {}
