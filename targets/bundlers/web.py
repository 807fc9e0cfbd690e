"""The browser demo (`sample_apps/web`): runs any validated artifact the target built (TF.js), nothing generated."""
from __future__ import annotations

from typing import ClassVar

from edge_pipeline.plugins import Bundler


class WebBundler(Bundler):
    name: ClassVar[str] = "web"
