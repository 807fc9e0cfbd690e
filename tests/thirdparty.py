"""Registers a third-party plugin package on a temporary path, exactly as pip would (a dist-info with
entry points), so the tests exercise real discovery: a crashing exporter and one with a missing dependency."""
from __future__ import annotations

from pathlib import Path

PLUGIN_MODULE = '''
import os
import signal

from edge_pipeline.plugins import Exporter


class CrashingExporter(Exporter):
    """Native converters can segfault; this one does, on purpose."""
    name = "crash"
    format = "crash"
    suffix = ".crash"
    frameworks = ("torch",)
    precisions = {"fp32": None}
    runner = "litert"
    distributions = ("torch",)

    def export(self, model, dest):
        dest.write_bytes(b"half-written")
        os.kill(os.getpid(), signal.SIGSEGV)
'''

NEEDS_MISSING = '''
import edgepipe_package_that_is_not_installed  # noqa: F401


class Exporter:
    name = "needsdep"
'''

ENTRY_POINTS = """[edgepipe.exporters]
crash = edgepipe_thirdparty_plugins:CrashingExporter
needsdep = edgepipe_thirdparty_needsdep:Exporter
"""


def install_thirdparty(site: Path) -> Path:
    site.mkdir(parents=True, exist_ok=True)
    (site / "edgepipe_thirdparty_plugins.py").write_text(PLUGIN_MODULE)
    (site / "edgepipe_thirdparty_needsdep.py").write_text(NEEDS_MISSING)
    info = site / "edgepipe_thirdparty-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: edgepipe-thirdparty\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return site
