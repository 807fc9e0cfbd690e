"""Candidate artifacts for a quantize step that searches (an accuracy-budgeted fallback): each candidate model is
taken through the rest of its recipe to the very file that would ship and opened in the artifact's own runtime.

Why: a fallback that measures its candidates on a stand-in (PT2E's reference q/dq graph) reports a drop the
shipped `.tflite` or `.pte` does not have. Here the file that is measured is the file that ships: when the step
returns a candidate it built, the export stage copies that candidate's file to the artifact instead of
converting again (see export_stage.run_recipe)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_pipeline import registry
from edge_pipeline.measure.profiling import run_batches
from edge_pipeline.plugins import DataBundle, Model, QuantizeSettings, RecipeStep, Runner, ShippedRun, Work
from edge_pipeline.tensors import Tensors, order_inputs


@dataclass(frozen=True)
class Built:
    """One candidate: the model the step produced and the recipe state that turned it into a file."""

    model: Model
    work: Work


class Shipper:
    """`Work.ship` of one model step: builds candidates with the steps after it and runs them in `runner`."""

    def __init__(self, rest: tuple[RecipeStep, ...], runner: str, data: DataBundle, settings: QuantizeSettings,
                 folder: Path, suffix: str):
        self.rest, self.runner_name, self.data, self.settings = rest, runner, data, settings
        self.folder, self.suffix = folder, suffix
        self.built: list[Built] = []
        self._runner: Runner | None = None

    def __call__(self, model: Model) -> ShippedRun:
        folder = self.folder / f"candidate-{len(self.built)}"
        folder.mkdir(parents=True)
        work = Work(model, self.data, self.settings)
        last = len(self.rest) - 1
        for index, step in enumerate(self.rest):
            step.action(work, folder / (f"artifact{self.suffix}" if index == last else
                                        f"{index}-{step.tool}{step.suffix}"))
        if work.file is None:
            raise ValueError("the recipe after this step wrote no file")
        self.built.append(Built(model, work))
        runner = self._runner = self._runner or registry.create(Runner, self.runner_name)
        session = runner.open(work.file, 1, runner.variants[0])
        batch = self.data.batch

        def run(inputs: Tensors) -> list[np.ndarray]:
            return run_batches(session, order_inputs(session.input_specs, inputs), batch)
        return run

    def built_for(self, model: Model) -> Work | None:
        """The recipe state of the candidate whose module `model` carries (the step returned one it verified,
        perhaps with report notes added to its provenance), else None."""
        return next((b.work for b in self.built if b.model.module is model.module), None)
