"""The Linux board demo (`sample_apps/linux`): ships the same standalone runner the ssh transport pushes, so a
board runs bundles exactly as it is profiled."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, ClassVar

from edge_pipeline.plugins import BundlerBase

RUNNER_SCRIPT = Path(__file__).resolve().parents[1] / "transports" / "remote_runner.py"


class LinuxBundler(BundlerBase):
    name: ClassVar[str] = "linux"

    def generate(self, dest: Path, report: dict[str, Any], folder: Path) -> dict[str, Any]:
        shutil.copy2(RUNNER_SCRIPT, dest / "board_runtime.py")
        return {}
