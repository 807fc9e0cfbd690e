"""Exporters: write one artifact format and declare the recipes that reach it. The default recipe is
[bridge] -> [model transform] -> serialize -> [artifact transform]; an ONNX-based exporter's is
[bridge] -> capture ONNX -> [ONNX transform] -> serialize. An exporter with another route overrides `recipe`."""
from __future__ import annotations

import shutil
import tempfile
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from edge_pipeline.fsutil import copy_regular_tree
from edge_pipeline.plugins.contract import Plugin
from edge_pipeline.plugins.model import Model
from edge_pipeline.plugins.recipe import Carrier, Recipe, RecipeStep, StepKind, Work, file_step, write_step
from edge_pipeline.plugins.transform import Bridge, Transform
from edge_pipeline.precision import Precision
from edge_pipeline.types import TASKS, JsonObject


class Exporter(Plugin):
    """`precisions` maps each precision it offers to the transform that makes it (None: none needed).
    `runner`: the runner that validates its artifacts (None: no runtime here can, and `unvalidated_reason`
    says why)."""

    kind: ClassVar[str] = "exporter"
    format: ClassVar[str]
    suffix: ClassVar[str]
    frameworks: ClassVar[tuple[str, ...]]
    precisions: ClassVar[dict[str, str | None]]
    runner: ClassVar[str | None]
    distributions: ClassVar[tuple[str, ...]]
    is_directory: ClassVar[bool] = False        # the artifact is a folder, written atomically
    unvalidated_reason: ClassVar[str | None] = None
    tasks: ClassVar[tuple[str, ...]] = ("classification", "tensor")   # the models it exports (types.TASKS)

    @classmethod
    def declaration_problems(cls) -> list[str]:
        problems = ["'frameworks' is empty"] if not cls.frameworks else []
        problems += [f"'tasks' names {task!r}, which is not a task ({', '.join(TASKS)})"
                     for task in cls.tasks if task not in TASKS] + (["'tasks' is empty"] if not cls.tasks else [])
        if cls.runner is None and not cls.unvalidated_reason:
            problems.append("'runner' is None but 'unvalidated_reason' does not say why")
        known = Precision.names(buildable=True)
        problems += [f"'precisions' names {name!r}, which is not a precision ({', '.join(known)})"
                     for name in cls.precisions if name not in known]
        return problems

    @classmethod
    def references(cls) -> list[tuple[str, str]]:
        named = [("transform", t) for t in cls.precisions.values() if t is not None]
        return named + ([("runner", cls.runner)] if cls.runner is not None else [])

    @abstractmethod
    def export(self, model: Model, dest: Path) -> JsonObject:
        """Writes the artifact for `model` at `dest`; returns its metadata (converter, coverage, ...)."""

    def steps(self) -> tuple[RecipeStep, ...]:
        """This format's own steps from the live model to the file: one serialize step (`export`) unless the
        exporter shows its stages (capture, lower, serialize)."""
        return (write_step(StepKind.SERIALIZE, self.name, self.export, self.distributions, self.suffix),)

    def recipe(self, bridge: Bridge | None, transform: Transform | None) -> Recipe:
        """The steps from the source model to this format at one precision (`transform` makes it): a step that
        takes the model runs before this format's own steps, one that takes a file after."""
        return around(self.steps(), bridge, transform)


class OnnxExporter(Exporter):
    """A format made from an ONNX file: ONNX transforms (ORT quantization) run on that file before `finish`."""

    @abstractmethod
    def to_onnx(self, model: Model, onnx_path: Path) -> None:
        """Writes the model as ONNX."""

    @abstractmethod
    def finish(self, onnx_path: Path, dest: Path) -> JsonObject:
        """Turns a (possibly quantized) ONNX file into the artifact; returns its metadata."""

    def export(self, model: Model, dest: Path) -> JsonObject:
        with tempfile.TemporaryDirectory(prefix="edgepipe-onnx-") as tmp:
            onnx_path = Path(tmp) / "model.onnx"
            self.to_onnx(model, onnx_path)
            return self.finish(onnx_path, dest)

    def recipe(self, bridge: Bridge | None, transform: Transform | None) -> Recipe:
        capture = write_step(StepKind.CAPTURE, "onnx-export", _none(self.to_onnx), self.distributions, ".onnx")
        finish = file_step(StepKind.SERIALIZE, self.name, lambda src, dest, _: self.finish(src, dest),
                           self.distributions, self.suffix)
        steps = around((capture,), bridge, transform).steps
        return Recipe((*steps, finish))


def around(own: tuple[RecipeStep, ...], bridge: Bridge | None, transform: Transform | None) -> Recipe:
    """[bridge] -> [the transform, if it takes the model] -> `own` steps -> [the transform, if it takes a file]."""
    steps = [bridge.recipe_step()] if bridge is not None else []
    step = transform.recipe_step() if transform is not None else None
    if step is not None and step.takes is Carrier.MODEL:
        steps.append(step)
    steps += own
    if step is not None and step.takes is Carrier.FILE:
        steps.append(step)
    return Recipe(tuple(steps))


def copy_step(tool: str = "copy") -> RecipeStep:
    """A step that copies the previous file (or folder) as it is: the simplest artifact transform."""
    def copy(src: Path, dest: Path, _: Work) -> JsonObject:
        if src.is_dir():
            copy_regular_tree(src, dest, "the previous step's folder")
        else:
            shutil.copyfile(src, dest)
        return {}
    return file_step(StepKind.TRANSFORM, tool, copy)


def _none(write: Callable[[Model, Path], None]) -> Callable[[Model, Path], JsonObject]:
    def run(model: Model, path: Path) -> JsonObject:
        write(model, path)
        return {}
    return run

