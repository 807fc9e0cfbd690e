"""Build history (issue 23): each build appended to a TensorBoard log as the next step, tagged with its git commit,
read back with TensorBoard's own event reader and served by `tensorboard --logdir`; `edgepipe history` over the
reports, as JSON and as a self-contained chart page checked in headless Chromium."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import run_cli

pytestmark = pytest.mark.slow
TARGET = "linux-arm64"


def _git(project: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e",
           "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", *args], cwd=project, env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> dict:
    """The built-in example built twice in a git work tree, one commit each, appended to one TensorBoard log;
    the second build ranks every int8 layer (so its step has per-layer SQNR). Each report is kept."""
    project = tmp_path_factory.mktemp("history")
    _git(project, "init", "-q")
    commits, reports = [], []
    for i, extra in enumerate(([], ["--sensitivity", "always"])):
        (project / "notes.txt").write_text(f"build {i}\n")
        _git(project, "add", "notes.txt")
        _git(project, "commit", "-q", "-m", f"build {i}")
        commits.append(_git(project, "rev-parse", "HEAD"))
        proc = run_cli("build", "--target", TARGET, "--out", "out", "--tensorboard", "tb", *extra, cwd=project)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"TensorBoard: step {i} appended to" in proc.stdout
        kept = project / "reports" / str(i) / "report.json"
        kept.parent.mkdir(parents=True)
        shutil.copyfile(project / "out" / TARGET / "report.json", kept)
        reports.append(json.loads(kept.read_text()))
    return {"project": project, "commits": commits, "reports": reports}


def test_tensorboard_reads_back_each_build_as_one_step(two_builds: dict) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    project, reports, commits = two_builds["project"], two_builds["reports"], two_builds["commits"]
    assert [r["history"]["step"] for r in reports] == [0, 1]
    assert [r["history"]["commit"] for r in reports] == commits
    run = EventAccumulator(str(project / "tb" / TARGET), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    run.Reload()
    for label in ("tflite:int8", "onnx:fp32"):
        artifacts = [next(a for a in r["artifacts"] if f"{a['format']}:{a['precision']}" == label) for r in reports]
        sizes = run.Scalars(f"{label}/size_kb")
        assert [e.step for e in sizes] == [0, 1]
        assert [e.value for e in sizes] == pytest.approx([a["size_bytes"] / 1024 for a in artifacts])
        accuracy = run.Scalars(f"{label}/accuracy")
        assert [e.value for e in accuracy] == pytest.approx([a["accuracy"] for a in artifacts], abs=1e-6)
        one_thread = [next(t for t in a["latency_by_threads"] if t["threads"] == 1)["p50"] for a in artifacts]
        assert [e.value for e in run.Scalars(f"{label}/latency_p50_ms/1_thread")] == pytest.approx(one_thread)
    texts = [e.tensor_proto.string_val[0].decode() for e in run.Tensors("build/commit")]
    assert [commits[i] in text for i, text in enumerate(texts)] == [True, True], texts
    (histogram,) = run.Histograms("tflite:int8/layer_sqnr_db")      # only the second build ranked its layers
    layers = next(a for a in reports[1]["artifacts"] if a["format"] == "tflite" and a["precision"] == "int8")
    assert histogram.step == 1 and histogram.histogram_value.num == len(layers["sensitivity"]["layers"])


def test_gate_verdict_lands_at_the_step_of_the_build_it_checked(two_builds: dict) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    project = two_builds["project"]
    proc = run_cli("gate", "reports/1/report.json", "--baseline", "reports/0/report.json", "--tensorboard", "tb",
                   "--budget", "max-size-kb=100", cwd=project)
    assert proc.returncode == 1, proc.stdout + proc.stderr        # the fp32 artifacts are over 100 KB
    run = EventAccumulator(str(project / "tb" / TARGET))
    run.Reload()
    assert [(e.step, e.value) for e in run.Scalars("gate/passed")] == [(1, 0.0)]
    failed = sum(1 for a in two_builds["reports"][1]["artifacts"] if a["size_bytes"] > 100 * 1024)
    assert [e.value for e in run.Scalars("gate/budget_failed")] == [failed] and failed >= 1


def test_tensorboard_serves_the_history_on_loopback(two_builds: dict) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tensorboard = Path(sys.executable).with_name("tensorboard")
    server = subprocess.Popen([str(tensorboard), "--logdir", str(two_builds["project"] / "tb"), "--host",
                               "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline, tags = time.monotonic() + 120, None
        while time.monotonic() < deadline and tags is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/scalars/tags", timeout=5) as r:
                    tags = json.loads(r.read())
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                time.sleep(1)
        assert tags is not None, "tensorboard did not answer in 120 s"
        assert "tflite:int8/size_kb" in tags[TARGET] and "build/passed" in tags[TARGET]
        url = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?run={TARGET}&tag=onnx:int8/agreement"
        with urllib.request.urlopen(url.replace(":int8", "%3Aint8"), timeout=5) as r:
            points = json.loads(r.read())
        assert [p[1] for p in points] == [0, 1]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_history_prints_and_plots_the_reports(two_builds: dict, tmp_path: Path) -> None:
    from .browser import keep_screenshot, open_page

    project, reports = two_builds["project"], two_builds["reports"]
    page_file = tmp_path / "history.html"
    proc = run_cli("history", "reports", "--html", str(page_file), "--json", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = json.loads(proc.stdout)
    assert [r["commit"] for r in found["reports"]] == two_builds["commits"]
    series = found["artifacts"]["tflite:int8"]
    expected = [next(a for a in r["artifacts"] if a["format"] == "tflite" and a["precision"] == "int8")
                for r in reports]
    assert [p["size_kb"] for p in series] == pytest.approx([a["size_bytes"] / 1024 for a in expected])
    requests: list[str] = []
    with open_page(page_file.as_uri(), tmp_path / "profile") as (page, errors):
        page.on("request", lambda r: requests.append(r.url))
        page.reload()
        page.wait_for_function("document.querySelectorAll('.scatterlayer .trace').length > 0")
        traces = page.evaluate("""() => document.getElementById('edgepipe-history').data.map(
            t => ({artifact: t.meta.artifact, figure: t.meta.figure, y: t.y}))""")
        shot = page.screenshot()
        keep_screenshot(page, "history-html.png")
    assert not errors, errors
    assert all(url.startswith("file://") for url in requests), requests
    assert len(traces) == 4 * len(found["artifacts"])
    sizes = next(t for t in traces if t["artifact"] == "tflite:int8" and t["figure"] == "size_kb")
    assert sizes["y"] == pytest.approx([a["size_bytes"] / 1024 for a in expected])
    assert len(shot) > 20_000                   # a chart, not a blank page


def test_history_and_tensorboard_inputs_fail_closed(two_builds: dict, tmp_path: Path) -> None:
    project = two_builds["project"]
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = run_cli("build", "--target", TARGET, "--out", str(tmp_path / "out"), "--tensorboard", str(blocker),
                   cwd=project)
    assert proc.returncode == 2 and "tensorboard folder" in proc.stderr, proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "out" / TARGET).exists()
    damaged = tmp_path / "tb"
    (damaged / TARGET).mkdir(parents=True)
    (damaged / TARGET / "edgepipe-builds.json").write_text('{"builds": 3}')
    proc = run_cli("build", "--target", TARGET, "--out", str(tmp_path / "out"), "--tensorboard", str(damaged),
                   cwd=project)
    assert proc.returncode == 2 and "tensorboard build index" in proc.stderr and "damaged" in proc.stderr
    proc = run_cli("gate", "reports/0/report.json", "--tensorboard", str(tmp_path / "no-log"),
                   "--junit", str(tmp_path / "gate.xml"), cwd=project)
    assert proc.returncode == 2 and "has no build logged" in proc.stderr, proc.stdout + proc.stderr
    assert not (tmp_path / "no-log").exists() and not (tmp_path / "gate.xml").exists()
    for args, message in ((["nowhere"], "not found"), ([str(tmp_path)], "no report.json in"),
                          ([str(damaged / TARGET / "edgepipe-builds.json")], "is not an edgepipe report")):
        proc = run_cli("history", *args, cwd=project)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stdout + proc.stderr)
        assert "Traceback" not in proc.stderr
