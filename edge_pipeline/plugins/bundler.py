"""Bundlers turn a build folder into a demo app: one `sample_apps/<name>/` template, the formats its code runs,
and what it generates beyond the copied models (C arrays, Kotlin / Swift model info, a board runtime)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from edge_pipeline.plugins.contract import Plugin
from edge_pipeline.types import JsonObject

if TYPE_CHECKING:
    from edge_pipeline.report.model import Report


class Bundler(Plugin):
    kind: ClassVar[str] = "bundler"
    formats: ClassVar[tuple[str, ...] | None] = None   # None: the app runs any validated format
    suffixes: ClassVar[tuple[str, ...] | None] = None  # the artifact files its app opens (None: any)
    asset_root: ClassVar[str] = "."                     # where in the template the app reads its files
    template_dir: ClassVar[Path | None] = None          # None: edgepipe's sample_apps/<name>
    tasks: ClassVar[tuple[str, ...]] = ("classification", "tensor", "feature-extraction")   # the models its app runs
    replays_recorded: ClassVar[bool] = False   # True: the app replays the build's recorded calls (any named inputs
                                               # and outputs, state fed back); else it feeds one float32 tensor

    @classmethod
    def declaration_problems(cls) -> list[str]:
        problems = ["'formats' is empty"] if cls.formats is not None and not cls.formats else []
        problems += ["'suffixes' is empty"] if cls.suffixes is not None and not cls.suffixes else []
        problems += ["'tasks' is empty"] if not cls.tasks else []
        if cls.template_dir is not None and not cls.template_dir.is_dir():
            problems.append(f"'template_dir' {str(cls.template_dir)!r} is not a folder")
        return problems

    def generate(self, dest: Path, report: "Report", folder: Path) -> JsonObject:
        """Writes extra files into the staged bundle `dest`; returns what the bundle summary reports."""
        return {}
