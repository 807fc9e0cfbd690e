"""The browser demo (`sample_apps/web`): runs any validated artifact the target built (TF.js), nothing generated.

The page fetches the shards each bundled model.json names, so those are checked to be files the bundle holds."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from edge_pipeline.plugins import Bundler
from edge_pipeline.types import JsonObject
from targets.runners.tfjs import model_files

if TYPE_CHECKING:
    from edge_pipeline.report.model import Report


class WebBundler(Bundler):
    name: ClassVar[str] = "web"

    def generate(self, dest: Path, report: Report, folder: Path) -> JsonObject:
        """Nothing generated; refuses a bundled TF.js model whose manifest names a shard outside its folder."""
        models = dest / self.asset_root / "models"
        for artifact in report.artifacts:
            if artifact.status == "ok" and artifact.format == "tfjs" and artifact.path:
                model_files(models / artifact.path)
        return {}
