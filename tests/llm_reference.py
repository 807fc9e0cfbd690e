"""The tiny example's reference as the source stage stores it, and one artifact measured against it by the
generation stage directly (so a test can hand it a deliberately broken runner)."""
from __future__ import annotations

from pathlib import Path

import pytest

from edge_pipeline.datafiles import save_bundle, save_outputs
from edge_pipeline.measure import generation_stage
from edge_pipeline.plugins import Runner
from edge_pipeline.precision import Precision
from edge_pipeline.records import MeasureJob
from edge_pipeline.sources import source_for
from edge_pipeline.types import TEXT_GENERATION, ProfileSettings, SourceSpec
from targets.examples import tiny_lm as example
from targets.runners.executorch_decoder import ExecutorchDecoderRunner


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> dict:
    """The example's data and the source's reference outputs, as the source stage stores them."""
    model, data = example.load()
    folder = tmp_path_factory.mktemp("lm-reference")
    save_bundle(folder / "data", data)
    save_outputs(folder / "reference.npz", source_for(model.framework).reference_outputs(model, data))
    return {"folder": folder, "model": model}


def measure(reference: dict, artifact: Path, precision: str, runner: Runner | None = None):
    runner = runner or ExecutorchDecoderRunner()
    job = MeasureJob(runner.name, artifact, "android", reference["folder"] / "data",
                     reference["folder"] / "reference.npz", Precision.parse(precision).thresholds,
                     ProfileSettings(threads=(1,)), None, SourceSpec(example="tiny-lm"), TEXT_GENERATION)
    return generation_stage.run(job, runner)


