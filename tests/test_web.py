"""The web target end to end: a PyTorch model reaches TF.js through ONNX and onnx2tf, is validated and timed
in Node, and its demo bundle runs in a real headless Chromium with the same predictions."""
from __future__ import annotations

import functools
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from .browser import open_page
from .conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def web_build(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("web-out")
    proc = run_cli("build", "--target", "web", "--out", str(out), cwd=out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"out": out, "report": json.loads((out / "web" / "report.json").read_text())}


def test_torch_model_reaches_tfjs_validated(web_build: dict) -> None:
    report = web_build["report"]
    arts = {a["precision"]: a for a in report["artifacts"]}
    assert report["passed"] and report["source"]["framework"] == "torch" and set(arts) == {"fp32", "uint8"}
    assert arts["fp32"]["agreement"] >= 0.99 and arts["fp32"]["max_abs_diff"] < 1e-3
    assert arts["uint8"]["accuracy_drop"] <= 1.0
    fp32_shards = arts["fp32"]["export"]["metadata"]["shard_bytes"]
    assert arts["uint8"]["export"]["metadata"]["shard_bytes"] <= 0.30 * fp32_shards
    for art in arts.values():
        folder = web_build["out"] / "web" / art["path"]
        assert (folder / "model.json").is_file() and art["runtime"].startswith("TF.js 4.22.0 wasm backend")
        backends = {e["backend"] for e in art["latency_by_threads"]}
        assert backends == {"wasm", "cpu"}, "wasm is timed, and the cpu backend for comparison"
        assert all("backend in Node" in e["measured_on"] for e in art["latency_by_threads"])


def test_bundle_is_self_contained(web_build: dict) -> None:
    bundle = web_build["out"] / "web" / "bundle"
    html = (bundle / "index.html").read_text()
    assert "http://" not in html and "https://" not in html, "no CDN"
    for name in ("vendor/tf.min.js", "vendor/tf-backend-wasm.min.js", "vendor/tfjs-backend-wasm.wasm",
                 "models/model-fp32-tfjs/model.json", "models/model-uint8-tfjs/model.json", "samples.json"):
        assert (bundle / name).is_file(), name
    assert "{" not in (bundle / "README.md").read_text().split("Models:")[0].replace("{}", "")


@pytest.fixture()
def served_bundle(web_build: dict):
    bundle = web_build["out"] / "web" / "bundle"
    handler = functools.partial(QuietHandler, directory=str(bundle))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", bundle
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm"}

    def log_message(self, *args) -> None:
        pass


def test_demo_page_in_headless_chromium_matches_the_node_runner(served_bundle, tmp_path: Path) -> None:
    url, bundle = served_bundle
    with open_page(url, tmp_path / "profile") as (page, errors):
        page.wait_for_function("document.body.dataset.status !== undefined", timeout=60_000)
        status = page.evaluate("document.body.dataset.status")
        results = page.evaluate("window.edgepipeResults")
        rendered = page.inner_text("body")
    assert status == "done", (status, errors, rendered)
    assert errors == []
    assert results["backend"] == "wasm"
    samples = json.loads((bundle / "samples.json").read_text())
    for result in results["results"]:
        expected = np.asarray(samples["expected"][result["name"]])
        got = np.asarray(result["predictions"])
        assert got.shape == expected.shape
        assert (got.argmax(1) == expected.argmax(1)).all()
        assert np.abs(got - expected).max() < 1e-3
        assert result["p50_ms"] > 0
    assert "median latency" in rendered
