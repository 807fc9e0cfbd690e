"""Export recipes: a route from a source model to an artifact as a sequence of typed steps (ExecuTorch's staged
export recipes). Each step says what it takes and gives (a live model or a file), which tool runs it and which
distributions that tool is; the export stage runs any recipe the same way, checks that its steps fit together,
and writes the route (every step with its tool and version) into the report. A new route is a new recipe that a
plugin declares, never a new branch in the core."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np

from edge_pipeline.errors import StageFailed
from edge_pipeline.plugins.model import DataBundle, Model, QuantizeSettings
from edge_pipeline.tensors import Tensors
from edge_pipeline.types import JsonObject

ShippedRun = Callable[[Tensors], list[np.ndarray]]   # inputs -> a candidate artifact's raw outputs, in its runtime
Ship = Callable[[Model], ShippedRun]                 # a candidate model -> its artifact, built and opened


class StepKind(str, Enum):
    """What a step does on the way to the artifact."""

    CAPTURE = "capture"           # trace / export the framework model to a graph (e.g. torch -> ONNX)
    BRIDGE = "bridge"             # into another framework (torch -> TensorFlow, ONNX -> torch)
    QUANTIZE = "quantize"         # a transform of the live model or of a written file
    LOWER = "lower"               # to a backend (XNNPACK delegation)
    SERIALIZE = "serialize"       # write the artifact file
    TRANSFORM = "transform"       # rewrite a written file (optimise, copy, sign)


class Carrier(str, Enum):
    """What travels between steps: the live model, or a file the previous step wrote."""

    MODEL = "model"
    FILE = "file"


@dataclass
class Work:
    """A recipe's running state: the model or file so far, the data and settings, and the artifact's metadata."""

    model: Model
    data: DataBundle
    settings: QuantizeSettings
    file: Path | None = None
    metadata: JsonObject = field(default_factory=dict)
    ship: Ship | None = None      # set for a model step that has an artifact runtime after it: see export_stage


Action = Callable[[Work, Path], None]   # (state, where a file-writing step writes) -> None; updates the state


@dataclass(frozen=True)
class RecipeStep:
    kind: StepKind
    tool: str                                  # the plugin (or tool) that runs it
    takes: Carrier
    gives: Carrier
    action: Action = field(compare=False, repr=False)
    distributions: tuple[str, ...] = ()       # packages whose versions the route records and the cache keys on
    suffix: str = ""                          # of the file it writes when it is not the last step


@dataclass(frozen=True)
class Recipe:
    steps: tuple[RecipeStep, ...]

    def problems(self) -> list[str]:
        """A recipe starts from the model, ends with a file, and each step takes what the one before gives."""
        if not self.steps:
            return ["it has no steps"]
        found = []
        if self.steps[0].takes is not Carrier.MODEL:
            found.append(f"its first step '{self.steps[0].tool}' takes a {self.steps[0].takes.value}, not the model")
        if self.steps[-1].gives is not Carrier.FILE:
            found.append(f"its last step '{self.steps[-1].tool}' gives a {self.steps[-1].gives.value}, not a file")
        for before, after in zip(self.steps, self.steps[1:]):
            if before.gives is not after.takes:
                found.append(f"step '{after.tool}' takes a {after.takes.value} but '{before.tool}' gives a "
                             f"{before.gives.value}")
        return found

    @property
    def distributions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(d for step in self.steps for d in step.distributions))


def model_step(kind: StepKind, tool: str, change: Callable[[Model, DataBundle, QuantizeSettings], Model],
               distributions: tuple[str, ...] = ()) -> RecipeStep:
    """A step that rewrites the live model (bridge, PT2E quantization, a converter setting)."""
    def action(work: Work, _: Path) -> None:
        work.model = change(work.model, work.data, work.settings)
    return RecipeStep(kind, tool, Carrier.MODEL, Carrier.MODEL, action, distributions)


def write_step(kind: StepKind, tool: str, write: Callable[[Model, Path], JsonObject | None],
               distributions: tuple[str, ...] = (), suffix: str = "") -> RecipeStep:
    """A step that writes the live model to a file; its metadata becomes the artifact's."""
    def action(work: Work, out: Path) -> None:
        work.metadata.update(write(work.model, out) or {})
        work.file = out
    return RecipeStep(kind, tool, Carrier.MODEL, Carrier.FILE, action, distributions, suffix)


def file_step(kind: StepKind, tool: str, rewrite: Callable[[Path, Path, Work], JsonObject | None],
              distributions: tuple[str, ...] = (), suffix: str = "") -> RecipeStep:
    """A step that turns the previous file into a new one (`rewrite(src, dest, work)`); its metadata is merged."""
    def action(work: Work, out: Path) -> None:
        if work.file is None:
            raise StageFailed(f"recipe step '{tool}' has no file to read")
        work.metadata.update(rewrite(work.file, out, work) or {})
        work.file = out
    return RecipeStep(kind, tool, Carrier.FILE, Carrier.FILE, action, distributions, suffix)
