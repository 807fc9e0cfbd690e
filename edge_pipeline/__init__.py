"""edgepipe: take a trained model to validated, profiled edge artifacts with one command.

The Python API is what the CLI calls: `edge_pipeline.build(...)` and `edge_pipeline.profile(...)` return the
typed report (`edge_pipeline.report.Report`; `report.to_json()` is what `report.json` holds). Importing this
package imports no ML framework.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edge_pipeline.version import __version__

if TYPE_CHECKING:
    from edge_pipeline.report.model import Report
__all__ = ["__version__", "build", "profile"]


def build(target: str = "android", *, out_dir: str | Path = "build/edgepipe", config: str | Path | None = None,
          use_cache: bool = True, budgets: dict[str, float] | None = None, device: str | None = None) -> "Report":
    """Builds, validates and profiles every artifact `target` asks for; writes OUT_DIR/<target>/ and returns the
    report. `config`: an edgepipe.toml / pyproject.toml (default: discovered in the current folder)."""
    from edge_pipeline.building.pipeline import BuildOptions
    from edge_pipeline.building.pipeline import build as run_build
    from edge_pipeline.config import load_config
    from edge_pipeline.report.gating import validate_budget

    for name, value in (budgets or {}).items():
        validate_budget(name, value, f"budgets.{name}")
    checked = tuple((name, float(value)) for name, value in (budgets or {}).items())
    options = BuildOptions(target=target, out_dir=Path(out_dir), config=load_config(Path(config) if config else None),
                           use_cache=use_cache, budgets=checked, device=device)
    return run_build(options)


def profile(artifact: str | Path, *, target: str = "host", out_dir: str | Path = "build/edgepipe/profile",
            inputs: str | Path | None = None, reference: str | Path | None = None, runs: int = 100, warmup: int = 10,
            budgets: dict[str, float] | None = None, device: str | None = None) -> "Report":
    """Profiles an existing artifact in its own runtime (a vendor's file included) and returns the report."""
    from edge_pipeline.building.plan import load_target
    from edge_pipeline.config import load_config
    from edge_pipeline.measure.profile_artifact import profile as run_profile
    from edge_pipeline.types import ProfileSettings

    threads = load_target(target, load_config(None)).profile.threads if target != "host" else (1, 0)
    return run_profile(Path(artifact), target, Path(out_dir), Path(inputs) if inputs else None,
                       Path(reference) if reference else None, ProfileSettings(warmup=warmup, runs=runs, threads=threads),
                       dict(budgets or {}), device)
