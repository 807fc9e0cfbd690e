"""The model graph with overlays (issue 23): a real linux-arm64 build writes Model Explorer node data beside each
.tflite and .onnx artifact, keyed by the node ids Model Explorer's own adapters give the graph; `edgepipe explore`
serves the graph and the overlays on 127.0.0.1 (checked over its API and in headless Chromium); broken inputs are
one line with the documented exit code."""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import EDGEPIPE, run_cli

pytestmark = pytest.mark.slow
Start = Callable[..., tuple[subprocess.Popen, dict]]    # starts `edgepipe explore ARGS`: (process, its JSON line)
TARGET = "linux-arm64"


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("explore")
    proc = run_cli("build", "--target", TARGET, "--out", str(out), cwd=out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out / TARGET


def _report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


def _artifact(folder: Path, label: str) -> dict:
    return next(a for a in _report(folder)["artifacts"] if f"{a['format']}:{a['precision']}" == label)


def _results(folder: Path, relative: str) -> dict[str, object]:
    return {node: r["value"] for node, r in json.loads((folder / relative).read_text())["results"].items()}


@pytest.mark.parametrize("label", ["tflite:int8", "onnx:int8", "tflite:fp32", "onnx:fp32"])
def test_overlays_name_nodes_of_the_graph_model_explorer_draws(build: Path, label: str) -> None:
    from edge_pipeline.explorer.checks import convert, graph_node_ids
    from edge_pipeline.plugins import Runner
    from edge_pipeline.registry import plugin

    artifact = _artifact(build, label)
    overlays = artifact["graph_overlays"]
    view = plugin(Runner, artifact["runner"]).graph_view
    ids = graph_node_ids(convert(build / artifact["path"], view))     # Model Explorer's own adapter
    latency = _results(build, overlays["latency_ms"])
    precision = _results(build, overlays["precision"])
    assert set(latency) <= ids and set(precision) <= ids
    assert all(isinstance(v, float) and v >= 0 for v in latency.values())
    # the profiler's time, node by node: the overlay adds up to what the op profile measured
    profiled = artifact["op_profile"]
    assert len(latency) >= min(3, profiled["op_count"])
    top = profiled["top"][0]
    assert max(latency.values()) >= 0.5 * top["avg_ms"]
    if label.endswith("int8"):
        sqnr = _results(build, overlays["sqnr_db"])
        assert set(sqnr) <= ids and len(sqnr) >= 3
        assert all(20 < float(v) < 80 for v in sqnr.values()), sqnr     # int8 of the digits CNN: ~40-47 dB
        weighted = [n for n, kind in precision.items() if kind == "int8"]
        assert len(weighted) >= 4 and "float" not in precision.values()
    else:
        assert overlays.get("sqnr_db") is None
        assert "int8" not in precision.values()


def test_sqnr_overlay_follows_the_artifact_numbers(build: Path, tmp_path: Path) -> None:
    """The per-op SQNR is measured, not copied: against itself the float model has no error (no entry at all),
    and a float artifact whose first convolution answers 1.5x shows exactly that op's 6 dB."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from edge_pipeline.building.recorded import load_recording
    from targets.runners.onnxruntime_runner import OnnxRuntimeRunner

    runner = OnnxRuntimeRunner()
    floating = build / "model-fp32.onnx"
    recording = load_recording(build / "recorded.npz")
    assert recording is not None
    calls = [[recording.inputs.arrays[0][i * recording.batch:(i + 1) * recording.batch]] for i in range(2)]
    assert runner.node_errors(floating, floating, calls) == {}
    model = onnx.load(str(floating))
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    for tensor in [i for i in model.graph.initializer if i.name in conv.input[1:]]:     # weight and bias
        tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) * np.float32(1.5), tensor.name))
    damaged = tmp_path / "damaged.onnx"
    onnx.save(model, str(damaged))
    errors = runner.node_errors(damaged, floating, calls)
    assert math.isclose(errors[conv.name], 10 * math.log10(1 / 0.25), abs_tol=0.05), errors   # noise: 0.5x


@pytest.fixture
def explorer(build: Path) -> Iterator[Start]:
    """Starts `edgepipe explore --no-open --json` and always stops it."""
    started: list[subprocess.Popen] = []

    def start(*args: str) -> tuple[subprocess.Popen, dict]:
        proc = subprocess.Popen([*EDGEPIPE, "explore", str(build), "--no-open", "--port", "0", "--json", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ})
        started.append(proc)
        line = proc.stdout.readline()      # the one JSON line, written once the server listens
        assert line, proc.stderr.read()
        return proc, json.loads(line)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize("label", ["tflite:int8", "onnx:int8"])
def test_explore_serves_the_graph_and_its_overlays(build: Path, explorer: Start, label: str) -> None:
    proc, info = explorer("--artifact", label)
    assert info["artifact"] == label and [o["title"] for o in info["overlays"]] == \
        ["Latency (ms)", "SQNR (dB)", "Computes in"]
    base = info["url"].split("/?")[0]
    assert base.startswith("http://127.0.0.1:")
    assert _get(f"{base}/check_health") == (200, b"model_explorer_ok")
    command = {"cmdId": "convert", "extensionId": info["adapter"], "modelPath": info["path"], "settings": {}}
    status, body = _get(f"{base}/api/v1/send_command?json={urllib.parse.quote(json.dumps(command))}")
    assert status == 200
    from edge_pipeline.explorer.checks import graph_node_ids

    ids = graph_node_ids(json.loads(body))
    assert len(ids) == info["graph_nodes"] > 5
    for index, overlay in enumerate(info["overlays"]):
        status, body = _get(f"{base}/api/v1/load_node_data?node_data_index={index}")
        results = json.loads(json.loads(body)["content"])["results"]
        assert status == 200 and set(results) <= ids and len(set(results) & ids) == overlay["nodes"] > 0
    # one model only: another path, an arbitrary file read, an upload are refused
    other = {**command, "modelPath": str(build / "report.json")}
    assert _get(f"{base}/api/v1/send_command?json={urllib.parse.quote(json.dumps(other))}")[0] == 403
    assert _get(f"{base}/api/v1/read_text_file?path=/etc/passwd")[0] == 404
    assert _get(f"{base}/api/v1/load_node_data?node_data_index=9")[0] == 404
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=2).close()


def test_explore_page_draws_the_graph_with_overlays_offline(build: Path, explorer: Start, tmp_path: Path) -> None:
    from .browser import keep_screenshot, open_page

    _, info = explorer()        # default: the quantized .tflite, the one with an SQNR overlay
    assert info["artifact"] == "tflite:int8"
    base = info["url"].split("/?")[0]
    requests: list[str] = []
    with open_page("about:blank", tmp_path / "profile") as (page, errors):
        page.on("request", lambda r: requests.append(r.url))
        page.set_viewport_size({"width": 1400, "height": 820})
        page.goto(info["url"])
        page.wait_for_function("document.body.innerText.includes('SQNR vs fp32')", timeout=60_000)
        page.wait_for_function("document.body.innerText.includes('depthwise_conv_2d')", timeout=60_000)
        page.get_by_text("unfold_more_double").click()     # every layer opened: the ops with their colours
        page.mouse.move(700, 800)                         # no tooltip over the graph
        time.sleep(2)
        text = page.evaluate("document.body.innerText")
        assert "Computes in" in text and "Latency (ms, this host)" in text and "int8" in text
        assert page.locator("canvas, svg").count() > 0
        keep_screenshot(page, "explore-graph.png")
        shot = page.screenshot()
    assert errors == [], errors
    assert requests and all(u.startswith(base) or u == "about:blank" for u in requests), \
        [u for u in requests if not u.startswith(base)]
    assert len(set(shot)) > 50


def _broken_copy(build: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(build, copy)
    return copy


def _explore_fails(folder: Path, *args: str) -> tuple[int, str]:
    proc = run_cli("explore", str(folder), "--no-open", "--port", "0", *args, timeout=300)
    assert proc.stdout == "" and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return proc.returncode, lines[0]


def test_explore_refuses_what_it_cannot_show(build: Path, tmp_path: Path) -> None:
    code, line = _explore_fails(build, "--artifact", "pte:int8")
    assert code == 2 and "'pte:int8' is not in this report" in line
    # a report written before overlays existed (no per-op data)
    old = _broken_copy(build, tmp_path / "old")
    report = _report(old)
    for a in report["artifacts"]:
        a.pop("graph_overlays")
    (old / "report.json").write_text(json.dumps(report))
    code, line = _explore_fails(old)
    assert code == 2 and "no artifact of this build has a graph Model Explorer can draw" in line and ".pte" in line
    # an overlay path that leaves the build folder
    escaping = _broken_copy(build, tmp_path / "escaping")
    report = _report(escaping)
    report["artifacts"][1]["graph_overlays"]["latency_ms"] = "../../etc/passwd"
    (escaping / "report.json").write_text(json.dumps(report))
    code, line = _explore_fails(escaping, "--artifact", "tflite:int8")
    assert code == 2 and "points outside" in line


def test_explore_refuses_an_artifact_model_explorer_cannot_read(build: Path, tmp_path: Path) -> None:
    damaged = _broken_copy(build, tmp_path)
    garbage = b"TFL3" + os.urandom(4096)
    (damaged / "model-int8.tflite").write_bytes(garbage)
    code, line = _explore_fails(damaged, "--artifact", "tflite:int8")
    assert code == 2 and "not the file the report describes" in line
    report = _report(damaged)
    entry = next(a for a in report["artifacts"] if a["path"] == "model-int8.tflite")
    entry["sha256"] = hashlib.sha256(garbage).hexdigest()
    (damaged / "report.json").write_text(json.dumps(report))
    code, line = _explore_fails(damaged, "--artifact", "tflite:int8")
    assert code == 2 and "builtin_tflite_flatbuffer adapter cannot read" in line
    # overlays of another graph: the ONNX node names on the .tflite
    foreign = _broken_copy(build, tmp_path / "foreign")
    shutil.copyfile(foreign / "model-int8.onnx.precision.json", foreign / "model-int8.tflite.precision.json")
    code, line = _explore_fails(foreign, "--artifact", "tflite:int8")
    assert code == 2 and "names none of the graph's nodes" in line


def test_explore_port_in_use_is_one_line(build: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli("explore", str(build), "--no-open", "--port", str(port), timeout=300)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and f"cannot listen on 127.0.0.1:{port}" in proc.stderr
