"""A third-party distribution, installed on a temporary path as pip would (a dist-info with entry points), adds
an exporter and a transport without touching the core: `edgepipe build` exports its format, validates it with
onnxruntime and measures it through its transport, as it does for the built-ins."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from .conftest import run_cli

PLUGIN_MODULE = '''
"""edgepipe-bench: an exporter with its own recipe (ONNX capture, then a copy step that makes its artifact), a
source for a new file suffix, and a loopback:// transport that measures on this host through the local
transport's code, labelled with the bench's name."""
from urllib.parse import urlparse

from edge_pipeline.errors import ConfigError
from edge_pipeline.plugins import Exporter, Recipe, StepKind, copy_step, write_step
from targets.sources.onnx_source import OnnxSource
from targets.transports.local import LocalTransport


class OnnxCopyExporter(Exporter):
    name = "onnx-copy"
    format = "onnx-copy"
    suffix = ".bench.onnx"
    frameworks = ("torch", "onnx")
    precisions = {"fp32": None}
    runner = "onnxruntime"
    distributions = ("torch", "onnx", "onnxruntime")

    def export(self, model, dest):
        from targets.exporters.onnx_export import to_onnx

        to_onnx(model, dest)
        return {"written_by": "edgepipe-bench"}

    def recipe(self, bridge, transform):
        capture = write_step(StepKind.CAPTURE, "bench-capture", self.export, self.distributions, ".onnx")
        return Recipe((capture, copy_step("bench-copy")))


class BenchModelSource(OnnxSource):
    """`.benchonnx`: ONNX files under the bench's own suffix."""
    name = "bench-onnx"
    suffixes = (".benchonnx",)


class LoopbackTransport(LocalTransport):
    name = "loopback"
    schemes = ("loopback",)

    def parse(self, url):
        parsed = urlparse(url or "")
        if parsed.scheme != "loopback" or not parsed.netloc:
            raise ConfigError(f"--device '{url}' must look like loopback://NAME")
        return parsed.netloc

    def device_label(self, url):
        return f"device loopback://{self.parse(url)} (this host)"
'''

ENTRY_POINTS = """[edgepipe.exporters]
onnx-copy = edgepipe_bench:OnnxCopyExporter

[edgepipe.sources]
bench-onnx = edgepipe_bench:BenchModelSource

[edgepipe.transports]
loopback = edgepipe_bench:LoopbackTransport
"""

CONFIG = """
model = "usermodels:make_model"
example-inputs = "usermodels:example_inputs"
calibration = "usermodels:calibration"
evaluate = "usermodels:evaluate"

[targets.bench]
extends = "linux-arm64"
formats = ["onnx-copy:fp32"]
"""


def install_bench(site: Path) -> dict[str, str]:
    """The distribution on `site`, and the environment a subprocess finds it with."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "edgepipe_bench.py").write_text(PLUGIN_MODULE)
    info = site / "edgepipe_bench-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: edgepipe-bench\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    paths = [str(site), str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def test_plugins_lists_the_third_party_exporter_and_transport(tmp_path: Path) -> None:
    env = install_bench(tmp_path / "site")
    proc = run_cli("plugins", "--json", env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = {(r["kind"], r["name"]): r["distribution"] for r in json.loads(proc.stdout)["plugins"]}
    assert rows[("exporter", "onnx-copy")] == rows[("transport", "loopback")] == "edgepipe-bench"
    assert rows[("source", "bench-onnx")] == "edgepipe-bench"
    assert {("transport", "ssh"), ("transport", "adb"), ("transport", "local"), ("bundler", "linux")} <= set(rows)


def test_a_malformed_third_party_device_url_is_a_usage_error(user_project, tmp_path: Path) -> None:
    project = user_project(CONFIG)
    env = install_bench(tmp_path / "site")
    proc = run_cli("build", "--target", "bench", "--out", str(project / "out"), "--json",
                   "--device", "loopback://", cwd=project, env=env, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "must look like loopback://NAME" in proc.stdout + proc.stderr
    assert not (project / "out" / "bench" / "report.json").exists()


@pytest.mark.slow
def test_build_exports_validates_and_measures_through_third_party_plugins(user_project, tmp_path: Path) -> None:
    project = user_project(CONFIG)
    env = install_bench(tmp_path / "site")
    proc = run_cli("build", "--target", "bench", "--out", str(project / "out"), "--json",
                   "--device", "loopback://bench", cwd=project, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    (artifact,) = report["artifacts"]
    assert artifact["format"] == "onnx-copy" and artifact["status"] == "ok", artifact
    assert artifact["path"].endswith(".onnx") and (project / "out" / "bench" / artifact["path"]).is_file()
    assert "ONNX Runtime" in artifact["runtime"] and artifact["validation"]["passed"]
    assert artifact["agreement"] >= 0.98
    assert artifact["latency_by_threads"] and all(e["measured_on"].startswith("device loopback://bench (this host)")
                                                  for e in artifact["latency_by_threads"])
    assert artifact["measured_on"].startswith("device loopback://bench")
    assert "board_runtime.py" in report["bundle"]["files"]   # the linux bundler, found like any plugin
    route = [(s["step"], s["tool"]) for s in artifact["export"]["route"]]
    assert route == [("capture", "bench-capture"), ("transform", "bench-copy")]   # its own recipe, as declared
    assert artifact["export"]["route"][0]["versions"]["onnxruntime"]


@pytest.mark.slow
def test_a_third_party_source_loads_its_own_file_suffix_in_a_real_build(tmp_path: Path) -> None:
    from .test_keras_and_bridges import _matmul_model

    project = tmp_path / "project"
    project.mkdir()
    _matmul_model(project / "tiny.benchonnx")
    (project / "edgepipe.toml").write_text('model = "tiny.benchonnx"\n[targets.bench]\nextends = "linux-arm64"\n'
                                           'formats = ["onnx:fp32", "onnx-copy:fp32"]\n')
    env = {**install_bench(tmp_path / "site"), "EDGEPIPE_CACHE_DIR": str(tmp_path / "cache")}
    proc = run_cli("build", "--target", "bench", "--out", str(project / "out"), "--json", cwd=project, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["source"]["framework"] == "onnx"
    assert {a["format"]: a["status"] for a in report["artifacts"]} == {"onnx": "ok", "onnx-copy": "ok"}
    routes = {a["format"]: [(s["step"], s["tool"]) for s in a["export"]["route"]] for a in report["artifacts"]}
    assert routes["onnx"] == [("capture", "onnx-export"), ("serialize", "onnx")]   # the built-in ONNX recipe
