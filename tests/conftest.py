"""Shared fixtures: an isolated cache, one real android build reused by many tests, user-model projects."""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

EDGEPIPE = [sys.executable, "-m", "edge_pipeline"]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test shares one cache (so the example trains once) that is not the user's own."""
    path = tmp_path_factory.mktemp("edgepipe-cache")
    os.environ["EDGEPIPE_CACHE_DIR"] = str(path)
    return path


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """In-process training of a tiny test model: one thread trains it as well, many times faster than threads that
    compete with a build for the cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGEPIPE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="session")
def android_build(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The default command, cold: `edgepipe build --target android --out OUT`."""
    out = tmp_path_factory.mktemp("out")
    started = time.perf_counter()
    proc = run_cli("build", "--target", "android", "--out", str(out), cwd=out)
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "android" / "report.json").read_text())
    return {"out": out, "report": report, "seconds": elapsed, "stdout": proc.stdout, "stderr": proc.stderr}


@pytest.fixture(scope="session")
def digits_server(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`edgepipe build --target server` on the built-in example: three server formats, two served for real."""
    out = tmp_path_factory.mktemp("server")
    with contextlib.ExitStack() as held:      # TorchServe's default gRPC ports taken: served builds must not need them
        for port in (7070, 7071):
            holder = held.enter_context(socket.socket())
            with contextlib.suppress(OSError):
                holder.bind(("127.0.0.1", port))
                holder.listen()
        proc = run_cli("build", "--target", "server", "--out", str(out), cwd=out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"out": out / "server", "report": json.loads((out / "server" / "report.json").read_text())}


USER_MODULE = '''
import numpy as np
import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8)   # a 0-dim buffer (num_batches_tracked) must fingerprint too
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.norm(self.conv(x))).flatten(1))


def make_model():
    torch.manual_seed(1)
    return TinyNet()


class HugeBiasNet(nn.Module):
    """Logits = 1000 + a tiny signal: per-tensor int8 output quantization erases the signal."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.fc = nn.Linear(64, 10)
        with torch.no_grad():
            self.fc.weight.mul_(0.01)
            self.fc.bias.fill_(1000.0)

    def forward(self, x):
        return self.fc(x.flatten(1))


def make_huge_bias():
    return HugeBiasNet()


class VideoNet(nn.Module):
    """A 5-D (clip) input: more than the web target's TF.js kernels handle."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(1, 2, 3, padding=1)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3, 4))


def make_video():
    return VideoNet()


def broken_factory():
    raise ValueError("cannot build this model")


def _rng():
    return np.random.default_rng(0)


def example_inputs():
    return torch.from_numpy(_rng().random((1, 1, 8, 8), dtype=np.float32))


def calibration():
    rng = _rng()
    return [torch.from_numpy(rng.random((8, 1, 8, 8), dtype=np.float32)) for _ in range(4)]


def calibration_rgb():
    return [_rng().random((8, 3, 8, 8), dtype=np.float32)]


def evaluate():
    rng = _rng()
    for _ in range(4):
        yield rng.random((16, 1, 8, 8), dtype=np.float32), rng.integers(0, 10, 16)
'''


@pytest.fixture()
def user_project(tmp_path: Path, cache_dir: Path):
    """A folder with a user's model module; call it with the TOML body to write edgepipe.toml."""
    (tmp_path / "usermodels.py").write_text(USER_MODULE)

    def write(toml: str) -> Path:
        (tmp_path / "edgepipe.toml").write_text(textwrap.dedent(toml))
        return tmp_path

    return write
