"""The Python API the CLI is a layer over: `edge_pipeline.build()` and `edge_pipeline.profile()`."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import edge_pipeline


def test_importing_the_api_imports_no_ml_framework() -> None:
    code = ("import sys, edge_pipeline as e; e.build; e.profile; "
            "print(sorted(m for m in ('torch', 'tensorflow', 'onnxruntime', 'executorch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_bad_budget_is_a_config_error() -> None:
    from edge_pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown budget 'max-size'"):
        edge_pipeline.build(budgets={"max-size": 1})


@pytest.mark.slow
def test_build_then_profile_through_the_api(tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "edgepipe.toml").write_text('[targets.android]\nformats = ["onnx:fp32"]\n')
    report = edge_pipeline.build("android", out_dir=tmp_path / "out")
    assert report["passed"] and report["artifacts"][0]["validation"]["outputs"][0]["name"] == "output"
    artifact = tmp_path / "out" / "android" / report["artifacts"][0]["path"]
    profiled = edge_pipeline.profile(artifact, out_dir=tmp_path / "profile", runs=3, warmup=1)
    assert profiled["artifacts"][0]["inputs"][0]["shape"] == [1, 1, 8, 8]
