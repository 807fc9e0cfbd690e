"""Export stage: rebuild the source, then run the artifact's recipe (bridge, quantize, serialize, transform)
step by step, writing the artifact atomically. Every route is a recipe an exporter declares; this module runs
any of them the same way."""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from edge_pipeline import registry
from edge_pipeline.building.shipping import Shipper
from edge_pipeline.config import pruner_for
from edge_pipeline.datafiles import load_bundle
from edge_pipeline.errors import InputError, StageFailed
from edge_pipeline.fsutil import atomic_dir, atomic_path, copy_regular_tree
from edge_pipeline.host import package_version
from edge_pipeline.plugins import Bridge, Carrier, Exporter, Model, Recipe, Transform, Work
from edge_pipeline.records import ExportJob, ExportResult, RouteStep
from edge_pipeline.sources import load_source, source_for
from edge_pipeline.types import JsonObject


def run(job: ExportJob) -> ExportResult:
    model, _ = load_source(job.spec)
    model = replace(model, output_names=job.output_names)
    if job.pruned is not None and job.prune_kind is not None:   # pruned once in the source stage: rebuild it
        model = pruner_for(job.prune_kind)().restore(model, job.pruned)
    elif job.state is not None:     # a factory's model: exactly the weights the source stage validated
        model = source_for(model.framework).restore_state(model, job.state)
    data = load_bundle(job.data)   # the exact arrays the source stage fingerprinted
    if job.settings.calibration_samples:
        data = replace(data, calibration=data.calibration[:job.settings.calibration_samples])
    transform = registry.create(Transform, job.transform) if job.transform else None
    if transform is not None and transform.needs_calibration and len(data.calibration) == 0:
        raise InputError(f"{job.label} needs calibration data: set 'calibration' in the config "
                         f"to a function returning input batches")
    exporter = registry.create(Exporter, job.exporter)
    bridge = registry.create(Bridge, job.bridge) if job.bridge else None
    recipe = checked_recipe(exporter, bridge, transform)
    started = time.perf_counter()
    writer = atomic_dir if exporter.is_directory else atomic_path
    with writer(job.dest) as dest:
        metadata = run_recipe(recipe, Work(model, data, job.settings), dest, job.runner)
    return ExportResult(metadata, round(time.perf_counter() - started, 3), route(recipe))


def checked_recipe(exporter: Exporter, bridge: Bridge | None, transform: Transform | None) -> Recipe:
    recipe = exporter.recipe(bridge, transform)
    problems = recipe.problems()
    if problems:
        raise StageFailed(f"the exporter '{exporter.name}' declares a broken recipe: {'; '.join(problems)}")
    return recipe


def run_recipe(recipe: Recipe, work: Work, dest: Path, runner: str | None = None) -> JsonObject:
    """Runs each step in order: the last writes `dest`, the others write into a scratch folder. A model step
    followed by more steps gets `work.ship` (with a runner to open the artifact): a step that searches measures
    its candidates as shipped files, and when it returns one of them that very file becomes the artifact."""
    with tempfile.TemporaryDirectory(prefix="edgepipe-recipe-") as scratch:
        last = len(recipe.steps) - 1
        for index, step in enumerate(recipe.steps):
            rest = recipe.steps[index + 1:]
            shipper = (Shipper(rest, runner, work.data, work.settings, Path(scratch) / f"ship-{index}", dest.suffix)
                       if runner is not None and rest and step.gives is Carrier.MODEL else None)
            work.ship = shipper
            out = dest if index == last else Path(scratch) / f"{index}-{step.tool}{step.suffix}"
            step.action(work, out)
            work.ship = None
            built = shipper.built_for(work.model) if shipper is not None else None
            if built is not None and built.file is not None:   # the verified candidate is the artifact
                if built.file.is_dir():
                    copy_regular_tree(built.file, dest, "the verified candidate")
                else:
                    shutil.copyfile(built.file, dest)
                work.metadata.update(built.metadata)
                work.file = dest
                break
    return _with_model_notes(work.metadata, work.model)


def route(recipe: Recipe) -> tuple[RouteStep, ...]:
    """Every step with its tool and the versions of the packages it is."""
    return tuple(RouteStep(step=step.kind.value, tool=step.tool,
                           versions={d: package_version(d) for d in step.distributions}) for step in recipe.steps)


def _with_model_notes(metadata: JsonObject, model: Model) -> JsonObject:
    """Quantization notes a model transform left on the model (scheme, sensitivity, fallback), unless a file
    transform reported its own."""
    notes = model.provenance.get("quantization")
    if notes is not None and "quantization" not in metadata:
        return {**metadata, "quantization": notes}
    return metadata
