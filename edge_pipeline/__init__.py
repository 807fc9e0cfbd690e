"""edgepipe: take a trained model to validated, profiled edge artifacts with one command.

The Python API (`edge_pipeline.api`, re-exported here) is what the CLI calls: `build(...)` and `profile(...)`
return the typed report (`edge_pipeline.report.Report`; `report.to_json()` is what `report.json` holds), `gate`
checks one, `update_baseline` writes a baseline, `bundle` fills a demo app, `tune` searches candidates, `history`
reads a series of reports, `explore` serves an artifact's graph with its overlays, and `plugins` / `targets`
list what is installed.
Progress arrives as typed events (`edge_pipeline.progress.ProgressEvent`). Importing this package imports no ML
framework.
"""
from __future__ import annotations

from edge_pipeline.api import (
    GateResult,
    TargetInfo,
    TuneOutcome,
    build,
    bundle,
    explore,
    gate,
    history,
    plugins,
    profile,
    targets,
    tune,
    update_baseline,
)
from edge_pipeline.progress import Phase, Progress, ProgressEvent, no_progress
from edge_pipeline.report.model import Report
from edge_pipeline.version import __version__

__all__ = ["GateResult", "Phase", "Progress", "ProgressEvent", "Report", "TargetInfo", "TuneOutcome", "__version__",
           "build", "bundle", "explore", "gate", "history", "no_progress", "plugins", "profile", "targets", "tune",
           "update_baseline"]
