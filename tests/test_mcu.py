"""The mcu target: a validated full-int8 .tflite compiled into C source for TFLite Micro, and its flash budget."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from targets.bundlers.mcu import read_c_array

from .conftest import run_cli

pytestmark = pytest.mark.slow

DUMP = """#include <cstdio>
#include "model_data.h"
int main() { std::fwrite(g_model, 1, g_model_len, stdout); return kTensorArenaEstimate > 0 ? 0 : 1; }
"""


@pytest.fixture(scope="module")
def mcu_build(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("mcu")
    proc = run_cli("build", "--target", "mcu", "--out", str(out), "--json", cwd=out)
    assert proc.returncode == 0, proc.stderr
    return {"out": out, "report": json.loads(proc.stdout)}


def test_c_source_compiles_and_holds_the_validated_model(mcu_build: dict, tmp_path: Path) -> None:
    bundle = mcu_build["out"] / "mcu" / "bundle"
    (art,) = mcu_build["report"]["artifacts"]
    tflite = (mcu_build["out"] / "mcu" / art["path"]).read_bytes()
    assert read_c_array(bundle / "model_data.cc") == tflite
    compiler = shutil.which("g++")
    assert compiler, "g++ is needed to compile the generated C source"
    (tmp_path / "dump.cc").write_text(DUMP)
    subprocess.run([compiler, "-std=c++17", "-I", str(bundle), str(tmp_path / "dump.cc"), str(bundle / "model_data.cc"),
                    "-o", str(tmp_path / "dump")], check=True)
    compiled = subprocess.run([str(tmp_path / "dump")], capture_output=True, check=True).stdout
    assert compiled == tflite

    from ai_edge_litert.interpreter import Interpreter

    from targets.runners.litert_session import LitertSession
    session = LitertSession(Interpreter(model_content=compiled))
    session._interpreter.allocate_tensors()
    samples = json.loads((bundle / "samples.json").read_text())
    x = np.asarray(samples["inputs"][0], dtype=np.float32).reshape(session.input_shapes[0])
    expected = np.asarray(samples["expected"]["tflite:int8"][0])
    assert np.allclose(session.run([x])[0][0], expected, atol=1e-6)
    meta = mcu_build["report"]["bundle"]["c_array"]
    assert 0 < meta["arena_estimate_bytes"] < 64 * 1024 and meta["model_bytes"] == len(tflite)


def test_model_over_the_flash_budget_fails_the_gate(mcu_build: dict, tmp_path: Path) -> None:
    proc = run_cli("build", "--target", "mcu", "--out", str(tmp_path / "out"), "--budget", "max-size-kb=16",
                   cwd=tmp_path)
    assert proc.returncode == 1 and "tflite:int8: size_kb = 46" in proc.stdout and "exceeds limit 16" in proc.stdout
