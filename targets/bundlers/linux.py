"""The Linux board demo (`sample_apps/linux`): ships the same standalone runner the ssh transport pushes, so a
board runs bundles exactly as it is profiled, and the build's recorded calls with what each artifact answered to
them here, stepped with its state fed back: `run.py` replays them on the board and compares."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from edge_pipeline import registry
from edge_pipeline.plugins import Bundler, Runner
from edge_pipeline.types import JsonObject

if TYPE_CHECKING:
    from edge_pipeline.report.model import Report

RUNNER_SCRIPT = Path(__file__).resolve().parents[1] / "transports" / "remote_runner.py"


class LinuxBundler(Bundler):
    name: ClassVar[str] = "linux"
    suffixes: ClassVar[tuple[str, ...] | None] = (".tflite", ".onnx", ".ort")   # what requirements.txt installs
    replays_recorded: ClassVar[bool] = True

    def generate(self, dest: Path, report: Report, folder: Path) -> JsonObject:
        from edge_pipeline.building.bundle import runnable
        from edge_pipeline.building.recorded import RECORDED, Replay, load_recording, replay, write_replays
        from edge_pipeline.paths import inside

        shutil.copy2(RUNNER_SCRIPT, dest / "board_runtime.py")
        recording = load_recording(folder / RECORDED)
        if recording is None:    # a build from before calls were recorded: run.py says to rebuild
            return {"recorded_calls": 0}
        replays: dict[str, Replay] = {}
        for artifact in runnable(self.name, report):
            if not artifact.runner or not artifact.path:
                continue
            session = registry.create(Runner, artifact.runner).open(inside(folder, artifact.path, "artifact"), 1)
            replays[artifact.label] = replay(recording, session)
        return write_replays(dest, recording, replays)
