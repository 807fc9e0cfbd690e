"""`edgepipe bundle`: the linux-arm64 bundle, unzipped into a fresh venv holding only its requirements, reproduces
the outputs recorded at build time; bundle names cannot reach outside the build folder."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def linux_build(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("linux")
    proc = run_cli("build", "--target", "linux-arm64", "--out", str(out), cwd=out)
    assert proc.returncode == 0, proc.stderr
    return out


def test_linux_bundle_reproduces_outputs_in_a_fresh_venv(linux_build: Path, tmp_path: Path) -> None:
    proc = run_cli("bundle", "--target", "linux-arm64", "--out", str(linux_build), "--name", "board-demo")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    archive = linux_build / "linux-arm64" / "board-demo.zip"
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        assert all(n.startswith("board-demo/") and ".." not in n for n in names)
        zf.extractall(tmp_path)
    app = tmp_path / "board-demo"
    assert ({"run.py", "board_runtime.py", "requirements.txt", "config.json", "samples.json", "README.md"}
            <= {p.name for p in app.iterdir()})
    assert len(json.loads((app / "config.json").read_text())["models"]) == 4
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-r", str(app / "requirements.txt")],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    run = subprocess.run([str(venv / "bin" / "python"), str(app / "run.py"), "--runs", "5"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(results) == {"tflite:fp32", "tflite:int8", "onnx:fp32", "onnx:int8"}
    assert all(r["matches"] for r in results.values())


def test_bundle_names_and_missing_builds_are_refused(linux_build: Path, tmp_path: Path) -> None:
    proc = run_cli("bundle", "--target", "linux-arm64", "--out", str(linux_build), "--name", "../escape")
    assert proc.returncode == 2 and "plain file name" in proc.stderr
    assert not (linux_build / "escape.zip").exists()
    proc = run_cli("bundle", "--target", "ios", "--out", str(tmp_path))
    assert proc.returncode == 2 and "build report not found" in proc.stderr
