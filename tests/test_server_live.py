"""Real servers started from the server bundle with the commands its README gives (ports moved to free ones):
TorchServe and Ray Serve answer the bundled request with the source's outputs, refuse a malformed one with a
400 naming the problem and keep serving; a server that cannot start or does not answer is one line naming it,
and nothing it started outlives it. A two-input (int64 ids and mask), two-output PyTorch encoder is built for
both servers and validated over their APIs."""
from __future__ import annotations

import json
import re
import shutil
import socket
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from edge_pipeline.errors import StageFailed
from targets.runners import server_session
from targets.runners.server_session import server_env
from targets.runners.torchserve import worker_ready
from targets.servers.process import ServerProcess, free_port, free_ports, request, running
from targets.servers.ray_layout import on_port

from .conftest import run_cli
from .test_server import multi_io_server_build

BIN = Path(sys.executable).parent


def leftovers() -> list[str]:
    """Processes still running from an edgepipe server session (their command lines name its work folder)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        line = " ".join(proc.info["cmdline"] or [])
        if any(mark in line for mark in ("edgepipe-torchserve-", "edgepipe-rayserve-", "edgepipe-live-", "ep-ray-")):
            found.append(line[:200])
    return found


def answers_like_the_source(url: str, bundle: Path) -> None:
    reply = request(url, (bundle / "predict_request.json").read_bytes())
    assert reply.status == 200, reply.body[:300]
    expected = json.loads((bundle / "predict_expected.json").read_text())["outputs"]
    outputs = json.loads(reply.body)["outputs"]
    assert set(outputs) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(np.asarray(outputs[name]), np.asarray(value), rtol=1e-4, atol=1e-4)


def refuses_malformed_and_keeps_serving(url: str, bundle: Path) -> None:
    broken = request(url, b'{"inputs": {"x": [[1, 2', "application/json")
    assert broken.status == 400 and b"JSON" in broken.body, broken.body[:300]
    missing = request(url, json.dumps({"inputs": {"wrong_name": [[0.0]]}}).encode())
    assert missing.status == 400 and b"input 'x' is missing" in missing.body, missing.body[:300]
    torn = request(url, b"PK\x03\x04 not really a zip", "application/octet-stream")
    assert torn.status == 400 and b".npz" in torn.body, torn.body[:300]
    lossy = request(url, json.dumps({"inputs": {"x": [[[["a"] * 8] * 8]]}}).encode())
    assert lossy.status == 400 and b"does not convert" in lossy.body, lossy.body[:300]
    answers_like_the_source(url, bundle)


@pytest.fixture(scope="module")
def bundle(digits_server: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("edgepipe-live-") / "bundle"
    shutil.copytree(digits_server["out"] / "bundle", folder)
    return folder


def test_torchserve_from_the_bundle_answers_like_the_source(bundle: Path) -> None:
    inference, management, metrics = free_ports(3)
    config = (bundle / "config.properties").read_text()
    for old, new in ((":8080", f":{inference}"), (":8081", f":{management}"), (":8082", f":{metrics}")):
        config = config.replace(old, new)
    (bundle / "config.properties").write_text(config)
    (bundle / "tmp").mkdir()
    server = ServerProcess("TorchServe", [str(BIN / "torchserve"), "--start", "--foreground", "--ncs",
                                          "--disable-token-auth", "--ts-config", "config.properties"],
                           bundle / "torchserve.log",
                           lambda: worker_ready(f"http://127.0.0.1:{management}/models/model"), cwd=bundle,
                           env=server_env(0, TMPDIR=str(bundle / "tmp")))
    with running(server):
        url = f"http://127.0.0.1:{inference}/predictions/model"
        answers_like_the_source(url, bundle)
        refuses_malformed_and_keeps_serving(url, bundle)
    assert not leftovers()


def test_ray_serve_from_the_bundle_answers_like_the_source(bundle: Path) -> None:
    app = bundle / "models" / "model-fp32-rayserve"
    port = free_port()
    (app / "serve_config.yaml").write_text(on_port(app / "serve_config.yaml", port))
    ray_dir = Path(tempfile.mkdtemp(prefix="ep-ray-", dir="/tmp"))    # Ray's socket paths must stay short
    server = ServerProcess("Ray Serve", [str(BIN / "serve"), "run", "serve_config.yaml", "--address", "local"],
                           bundle / "serve.log", lambda: b"edgepipe" in request(f"http://127.0.0.1:{port}/-/routes",
                                                                                 timeout_s=2).body,
                           cwd=app, env=server_env(0, RAY_TMPDIR=str(ray_dir), RAY_USAGE_STATS_ENABLED="0",
                                                   HOME=str(ray_dir)),   # Ray's auth token: not the user's ~/.ray
                           start_timeout_s=180)
    with running(server):
        url = f"http://127.0.0.1:{port}/"
        answers_like_the_source(url, bundle)
        refuses_malformed_and_keeps_serving(url, bundle)
    shutil.rmtree(ray_dir, ignore_errors=True)
    assert not leftovers()


def test_a_server_that_cannot_start_is_one_line_and_leaves_nothing(bundle: Path, tmp_path: Path) -> None:
    """TorchServe given an inference port something else holds: it exits, the error names it and the reason."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        (tmp_path / "config.properties").write_text(
            f"inference_address=http://127.0.0.1:{taken}\nmanagement_address=http://127.0.0.1:{free_port()}\n"
            f"metrics_address=http://127.0.0.1:{free_port()}\nmodel_store={bundle}/models/model-fp32-torchserve/"
            f"model-store\nload_models=model=model.mar\n")
        (tmp_path / "tmp").mkdir()
        server = ServerProcess("TorchServe", [str(BIN / "torchserve"), "--start", "--foreground", "--ncs",
                                              "--disable-token-auth", "--ts-config", "config.properties"],
                               tmp_path / "edgepipe-live-ts.log", lambda: False, cwd=tmp_path,
                               env=server_env(0, TMPDIR=str(tmp_path / "tmp")), start_timeout_s=60)
        with pytest.raises(StageFailed) as failure:
            server.start()
    message = str(failure.value)
    assert message.startswith("TorchServe ") and "\n" not in message
    assert re.search(r"(?i)address already in use|bind", message), message
    assert server.tree_pids() == [] and not leftovers()


def test_a_server_that_does_not_answer_times_out_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A server that accepts connections and never answers: the request times out, named, and it is stopped."""
    port = free_port()
    silent = ServerProcess("a silent server", [sys.executable, "-c", SILENT.format(port=port)],
                           tmp_path / "silent.log", lambda: _open(port))
    monkeypatch.setattr(server_session, "REQUEST_TIMEOUT_S", 1.0)

    class Silent(server_session.ServerSession):
        server_name = "the silent server"
        url = f"http://127.0.0.1:{port}/"
        input_specs = None

    session = Silent(silent)
    with pytest.raises(StageFailed, match=r"^the silent server did not answer http://127\.0\.0\.1:\d+/: .*timed out"):
        session.run([])
    session.close()
    assert silent.process is None


def test_two_int64_inputs_and_two_outputs_served_by_both_servers(tmp_path: Path) -> None:
    report = multi_io_server_build(tmp_path, "make_encoder", 'example-inputs = "multi_io:text_example"\n'
                                   'evaluate = "multi_io:text_evaluate"', ["torchserve:fp32", "rayserve:fp32"])
    for artifact in report["artifacts"]:
        outputs = {o["name"]: o for o in artifact["validation"]["outputs"]}
        assert set(outputs) == {"pooled", "token_logits"} and all(o["passed"] for o in outputs.values())
        assert all(o["sqnr_db"] is None or o["sqnr_db"] > 60 for o in outputs.values()), outputs
        assert all(level["errors"] == 0 for level in artifact["server_load"]["levels"])
    request_body = json.loads((tmp_path / "out" / "server" / "bundle" / "predict_request.json").read_text())
    assert np.asarray(request_body["inputs"]["input_ids"]).dtype.kind == "i"
    assert not leftovers()


def with_pickled_weights(program: bytes) -> bytes:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(program)) as src, zipfile.ZipFile(out, "w") as dest:
        for name in src.namelist():
            data = src.read(name)
            if name.endswith("_weights_config.json"):
                config = json.loads(data)
                next(iter(config["config"].values()))["use_pickle"] = True
                data = json.dumps(config).encode()
            dest.writestr(name, data)
    return out.getvalue()


def test_a_server_failing_in_a_build_fails_that_artifact_with_exit_4(tmp_path: Path) -> None:
    """TorchServe's launcher cannot find Java: the build names TorchServe and the reason in one line, exit 4."""
    (tmp_path / "edgepipe.toml").write_text('[targets.server]\nformats = ["torchserve:fp32"]\n')
    proc = run_cli("build", "--target", "server", "--no-cache", "--out", str(tmp_path / "out"), cwd=tmp_path,
                   env={"JAVA_HOME": str(tmp_path / "no-java")})
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "TorchServe exited" in ln]
    assert lines and "before it was ready" in lines[0], proc.stdout + proc.stderr
    assert not leftovers()


SILENT = """
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", {port}))
s.listen(); held = []
while True:
    held.append(s.accept()[0])
"""


def _open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("damage", ["extra module", "other app code", "runtime_env", "actor runtime_env",
                                    "archive extra file", "archive handler changed", "archive pickled weights"])
def test_server_artifacts_from_elsewhere_are_refused_before_any_server_runs_their_code(
        digits_server: dict, tmp_path: Path, damage: str) -> None:
    """TorchServe runs an archive's handler and Ray the app's modules: only edgepipe's own are started."""
    import zipfile

    source = digits_server["out"]
    kind = "torchserve" if damage.startswith("archive") else "rayserve"
    folder = tmp_path / f"model-fp32-{kind}"
    shutil.copytree(source / folder.name, folder)
    if damage == "extra module":
        (folder / "numpy.py").write_text("import os\n")
    elif damage == "other app code":
        (folder / "edgepipe_serve_app.py").write_text((folder / "edgepipe_serve_app.py").read_text() + "\n# x\n")
    elif damage == "runtime_env":
        (folder / "serve_config.yaml").write_text((folder / "serve_config.yaml").read_text().replace(
            "    import_path:", "    runtime_env: {pip: [requests]}\n    import_path:"))
    elif damage == "actor runtime_env":
        (folder / "serve_config.yaml").write_text((folder / "serve_config.yaml").read_text().replace(
            "        num_replicas: 1", "        num_replicas: 1\n        ray_actor_options: {runtime_env: {pip: [x]}}"))
    else:
        archive = folder / "model-store" / "model.mar"
        with zipfile.ZipFile(archive) as zf:
            entries = {name: zf.read(name) for name in zf.namelist()}
        if damage == "archive extra file":
            entries["evil.py"] = b"import os\n"
        elif damage == "archive handler changed":
            entries["torchserve_handler.py"] += b"\nimport os\n"
        else:     # torch.export.load would unpickle a tensor marked use_pickle
            entries["model.pt2"] = with_pickled_weights(entries["model.pt2"])
        with zipfile.ZipFile(archive, "w") as zf:
            for name, data in entries.items():
                zf.writestr(name, data)
    proc = run_cli("profile", str(folder), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "not an edgepipe" in line or "not edgepipe's" in line or "pickles" in line, line
    assert not leftovers()
