"""Profiling through the ssh transport against a real sshd on 127.0.0.1 (the 'board' is this machine, running
the artifact with its own Python runtime through the pushed runner script)."""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from .conftest import run_cli
from .sshd import SSHD, keygen, start_sshd

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    if os.geteuid() != 0 or not Path(SSHD).exists():
        pytest.fail("these tests need root and Debian openssh-server (.ci/run installs it)")
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


def profile_json(*args: str) -> tuple[int, dict]:
    proc = run_cli("profile", *args, "--json", "--runs", "20", "--warmup", "2")
    lines = proc.stdout.splitlines()
    return proc.returncode, json.loads(lines[0] if proc.returncode in (2, 3) else proc.stdout)


def test_build_measures_on_the_device_and_validates(sshd, cache_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "edgepipe.toml").write_text("[targets.linux-arm64]\n"
                                            "formats = ['tflite:int8', 'onnx:fp32', 'pte:fp32']\n")
    proc = run_cli("build", "--target", "linux-arm64", "--out", str(tmp_path / "out"), "--json",
                   "--device", sshd.url(sys.executable), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    for art in report["artifacts"]:
        assert art["status"] == "ok" and art["agreement"] >= 0.98
        assert art["measured_on"].startswith(f"device ssh://root@127.0.0.1:{sshd.port}")
        assert "host-emulated" not in art["measured_on"] and f"127.0.0.1:{sshd.port}" in art["runtime"]


def test_wrong_host_key_is_refused(sshd, android_build: dict, tmp_path: Path) -> None:
    keygen(tmp_path / "other")
    wrong = tmp_path / "known_hosts"
    pub = (tmp_path / "other.pub").read_text().split()
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {pub[0]} {pub[1]}\n")
    artifact = android_build["out"] / "android" / "model-fp32.tflite"
    code, payload = profile_json(str(artifact), "--device", sshd.url(sys.executable, known_hosts=wrong))
    assert code == 3 and "host key verification failed" in payload["error"]["message"]
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    code, payload = profile_json(str(artifact), "--device", sshd.url(sys.executable, known_hosts=empty))
    assert code == 3 and "refusing to connect" in payload["error"]["message"]


def test_unreachable_device_and_missing_runtime(sshd, android_build: dict, tmp_path: Path) -> None:
    from .sshd import free_port

    artifact = android_build["out"] / "android" / "model-fp32.tflite"
    code, payload = profile_json(str(artifact), "--device", sshd.url(sys.executable, port=free_port()))
    assert (code == 3 and "cannot reach the device" in payload["error"]["message"]
            and "tried twice" in payload["error"]["message"])
    bare = shutil.which("python3.11") or "/usr/bin/python3"   # a Python without the runtimes
    code, payload = profile_json(str(artifact), "--device", sshd.url(bare))
    assert code == 3, payload


def test_malformed_device_url_is_a_usage_error(android_build: dict) -> None:
    artifact = android_build["out"] / "android" / "model-fp32.tflite"
    code, payload = profile_json(str(artifact), "--device", "ssh://nouser-host")
    assert code == 2 and "ssh://user@host" in payload["error"]["message"]


def test_device_that_disconnects_mid_run_keeps_the_other_results(cache_dir: Path, tmp_path: Path) -> None:
    """A board whose link drops while the second artifact runs (its sshd dies): that artifact fails after one
    retry with a clear error, the first keeps its measurements. The board reports 1 core (OMP_NUM_THREADS=1,
    which `nproc` honours), so "all" threads means 1 there, not this host's cores."""
    from edge_pipeline.host import host_cores

    board = start_sshd(tmp_path / "board", extra_config=("SetEnv OMP_NUM_THREADS=1",))
    earlier = set(Path("/tmp").glob("edgepipe.*"))
    try:
        flaky = tmp_path / "flaky-python"
        flaky.write_text(f'#!/bin/sh\ncase "$2" in *.onnx) kill "$(cat {board.pid_file})"; kill -9 $PPID ;; esac\n'
                         f'exec {sys.executable} "$@"\n')
        flaky.chmod(0o755)
        (tmp_path / "edgepipe.toml").write_text("[targets.linux-arm64]\nformats = ['tflite:fp32', 'onnx:fp32']\n")
        proc = run_cli("build", "--target", "linux-arm64", "--out", str(tmp_path / "out"), "--json", "--no-cache",
                       "--device", board.url(str(flaky)), cwd=tmp_path)
    finally:
        board.stop()
        for left in set(Path("/tmp").glob("edgepipe.*")) - earlier:    # a dead board keeps its folder; here it is
            if (left / "remote_runner.py").exists():                     # this host, so the test removes it
                shutil.rmtree(left, ignore_errors=True)
    assert proc.returncode == 4, proc.stderr[-2000:]
    arts = {a["format"]: a for a in json.loads(proc.stdout)["artifacts"]}
    assert arts["tflite"]["status"] == "ok" and arts["tflite"]["agreement"] == 1.0
    assert "(x86_64, 1 cores)" in arts["tflite"]["measured_on"] or "1 cores" in arts["tflite"]["measured_on"]
    if host_cores() > 1:
        assert [e["threads"] for e in arts["tflite"]["latency_by_threads"]] == [1]
    error = arts["onnx"]["error"]["message"]
    assert arts["onnx"]["status"] == "failed" and "cannot reach the device" in error and "tried twice" in error


def test_a_scalar_input_reaches_the_device_as_a_scalar(sshd, tmp_path: Path) -> None:
    """One call of a model taking a chunk, an `[layers, N, H]` state and a rank-0 sample rate, pushed as is."""
    import numpy as np
    import torch

    class Gain(torch.nn.Module):
        def forward(self, chunk, state, sr):
            scaled = chunk * (sr.to(torch.float32) / 16000.0)
            return scaled.sum(dim=1, keepdim=True) + state[0], state * 0.5

    torch.onnx.export(Gain(), (torch.ones(1, 4), torch.ones(2, 1, 1), torch.tensor(8000)), str(tmp_path / "gain.onnx"),
                      input_names=["chunk", "state", "sr"], output_names=["y", "stateN"], dynamo=False)
    np.savez(tmp_path / "call.npz", chunk=np.ones((1, 4), np.float32), state=np.ones((2, 1, 1), np.float32),
             sr=np.array(8000))
    code, payload = profile_json(str(tmp_path / "gain.onnx"), "--inputs", str(tmp_path / "call.npz"),
                                 "--device", sshd.url(sys.executable), "--out", str(tmp_path / "out"))
    assert code == 0, payload
    (artifact,) = payload["artifacts"]
    assert {i["name"]: i["shape"] for i in artifact["inputs"]} == {"chunk": [1, 4], "state": [2, 1, 1], "sr": []}
    assert artifact["sample_outputs"] == [[3.0]]      # 4 x 0.5 + state 1.0, computed on the device


def test_a_language_model_is_judged_and_timed_on_the_board(sshd, cache_dir: Path, tmp_path: Path) -> None:
    """The `.pte` decoders are stepped on the board by the program runner edgepipe steps them with here: every tier
    judged there, time to first token and decode rate timed there; a LiteRT-LM bundle is refused by name."""
    (tmp_path / "edgepipe.toml").write_text("[targets.linux-arm64]\nformats = ['pte:fp32', 'pte:8da4w', "
                                            "'tflite:fp32']\n")
    proc = run_cli("build", "--target", "linux-arm64", "--example", "tiny-lm", "--out", str(tmp_path / "out"),
                   "--json", "--device", sshd.url(sys.executable), cwd=tmp_path)
    assert proc.returncode == 4, proc.stderr
    report = json.loads(proc.stdout)
    by_label = {f"{a['format']}:{a['precision']}": a for a in report["artifacts"]}
    for label in ("pte:fp32", "pte:8da4w"):
        artifact = by_label[label]
        generation = artifact["generation"]
        assert artifact["status"] == "ok", artifact["validation"]
        assert generation["measured_on"].startswith(f"device ssh://root@127.0.0.1:{sshd.port}")
        assert generation["measured_on"].endswith("decode by stepping")      # the runner's loop is not driven there
        assert f"127.0.0.1:{sshd.port}" in artifact["runtime"] and artifact.get("peak_rss_mb") is None
        assert generation["decode_tokens_per_s"] > 0 and generation["ttft_ms"] > 0 and generation["load_ms"] > 0
        assert generation["runtime_loop"] is None
    assert by_label["pte:fp32"]["generation"]["first_divergence"] == [None] * 8     # tier 1 held on the board
    refused = by_label["tflite:fp32"]
    assert refused["status"] == "failed" and "ExecuTorch language models (.pte) only" in json.dumps(refused)
    assert "Traceback" not in proc.stderr
    leftovers = [p for p in Path("/tmp").glob("edgepipe.*") if (p / "pte_program.py").exists()]
    assert not leftovers, leftovers            # every board folder removed when its session closed


def test_a_board_without_the_runtime_fails_the_language_model_and_keeps_nothing_there(sshd, cache_dir: Path,
                                                                                        tmp_path: Path) -> None:
    """The board's Python lacks ExecuTorch (the system interpreter): the artifact fails with one line naming the
    board, and the half-opened session leaves no work folder behind."""
    (tmp_path / "edgepipe.toml").write_text("[targets.linux-arm64]\nformats = ['pte:fp32']\n")
    proc = run_cli("build", "--target", "linux-arm64", "--example", "tiny-lm", "--out", str(tmp_path / "out"),
                   "--json", "--device", sshd.url("/usr/bin/python3"), cwd=tmp_path)
    assert proc.returncode == 4, proc.stderr
    (artifact,) = json.loads(proc.stdout)["artifacts"]
    assert artifact["status"] == "failed" and f"ssh://root@127.0.0.1:{sshd.port}" in json.dumps(artifact)
    assert "Traceback" not in proc.stderr
    assert not [p for p in Path("/tmp").glob("edgepipe.*") if (p / "pte_program.py").exists()]
