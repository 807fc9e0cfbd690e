"""The adb runner. No phone exists here: command construction and output parsing are checked against recorded
benchmark_model output, and the no-device path against a real adb server started by the test."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from edge_pipeline.errors import ConfigError, RunnerUnavailable
from targets.transports.adb import REMOTE_DIR, AdbDevice, check_device, parse_benchmark_output

from .conftest import run_cli

RECORDED = """STARTING!
Log parameter values verbosely: [0]
Num threads: [4]
Graph: [/data/local/tmp/edgepipe/model-int8.tflite]
The input model file size (MB): 0.047328
Initialized session in 3.412ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=7344 first=221 curr=62 min=55 max=1090 avg=64.2 std=21

Running benchmark for at least 100 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=15262 first=70 curr=61 min=54 max=688 avg=63.1 std=14

Inference timings in us: Init: 3412, First inference: 221, Warmup (avg): 64.2, Inference (avg): 63.1
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual \
memory footprint of the model at runtime. Take the information at your own discretion.
Memory footprint delta from the start of the tool (MB): init=2.875 overall=3.25
"""


def test_parse_recorded_benchmark_output() -> None:
    timings = parse_benchmark_output(RECORDED)
    assert timings["mean"] == pytest.approx(0.0631) and timings["init_ms"] == pytest.approx(3.412)
    assert (timings["runs"] == 15262 and timings["min"] == pytest.approx(0.054)
            and timings["stdev"] == pytest.approx(0.014))
    with pytest.raises(RunnerUnavailable, match="printed no inference timings"):
        parse_benchmark_output("ERROR: Could not open '/data/local/tmp/edgepipe/x.tflite'.\n")


def test_command_construction(tmp_path: Path) -> None:
    device = AdbDevice.parse("adb:emulator-5554?benchmark=/opt/android/benchmark_model&port=5038")
    assert device == AdbDevice("emulator-5554", "/opt/android/benchmark_model", 5038)
    model = tmp_path / "model-int8.tflite"
    pushes = device.push_commands(model)
    assert pushes[1] == ["adb", "-P", "5038", "-s", "emulator-5554", "push", "/opt/android/benchmark_model",
                         f"{REMOTE_DIR}/benchmark_model"]
    assert pushes[-1][-2:] == [str(model), f"{REMOTE_DIR}/model-int8.tflite"]
    command = device.benchmark_command(model, threads=4, warmup=10, runs=100)
    assert command[:5] == ["adb", "-P", "5038", "-s", "emulator-5554"] and command[5] == "shell"
    assert "--num_threads=4 --warmup_runs=10 --num_runs=100" in command[6]
    with pytest.raises(ConfigError, match="benchmark_model binary"):
        AdbDevice.parse("adb").push_commands(model)
    with pytest.raises(ConfigError, match="unknown option"):
        AdbDevice.parse("adb:x?bench=1")


@pytest.fixture()
def adb_server(tmp_path: Path):
    if shutil.which("adb") is None:
        pytest.fail("Debian adb is needed (.ci/run installs it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "HOME": str(tmp_path)}
    server = subprocess.Popen(["adb", "-P", str(port), "server", "nodaemon"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(50):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield port, env
    server.terminate()
    server.wait(timeout=10)


def test_no_phone_is_a_clear_environment_error(adb_server, tmp_path: Path) -> None:
    port, env = adb_server
    os.environ["HOME"], home = env["HOME"], os.environ.get("HOME")
    try:
        with pytest.raises(RunnerUnavailable, match="no Android device is connected"):
            check_device(AdbDevice(None, "/x", port))
    finally:
        if home is not None:
            os.environ["HOME"] = home
    (tmp_path / "m.tflite").write_bytes(b"x")
    proc = run_cli("profile", str(tmp_path / "m.tflite"), "--device", f"adb?benchmark=/x&port={port}", "--json",
                   env={"HOME": env["HOME"]})
    assert proc.returncode == 3 and "no Android device is connected" in json.loads(proc.stdout)["error"]["message"]
