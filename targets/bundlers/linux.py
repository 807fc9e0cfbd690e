"""The Linux board demo (`sample_apps/linux`): ships the same standalone runner the ssh transport pushes, so a
board runs bundles exactly as it is profiled."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from edge_pipeline.plugins import Bundler
from edge_pipeline.types import JsonObject

if TYPE_CHECKING:
    from edge_pipeline.report.model import Report

RUNNER_SCRIPT = Path(__file__).resolve().parents[1] / "transports" / "remote_runner.py"


class LinuxBundler(Bundler):
    name: ClassVar[str] = "linux"

    def generate(self, dest: Path, report: Report, folder: Path) -> JsonObject:
        shutil.copy2(RUNNER_SCRIPT, dest / "board_runtime.py")
        return {}
