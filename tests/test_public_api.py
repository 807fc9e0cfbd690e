"""The Python API the CLI is a layer over: `edge_pipeline.build()` and `edge_pipeline.profile()`."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import edge_pipeline
from edge_pipeline.report import Report


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
    assert isinstance(report, Report) and report.passed and report.status == "passed"
    assert report.artifacts[0].status == "ok" and report.artifacts[0].validation.outputs[0].name == "output"
    assert report.schema_version == 3 and report.checks == () and report.artifacts[0].latency_ms.p50 > 0
    on_disk = json.loads((tmp_path / "out" / "android" / "report.json").read_text())
    assert json.loads(json.dumps(report.to_json())) == on_disk
    artifact = tmp_path / "out" / "android" / report.artifacts[0].path
    profiled = edge_pipeline.profile(artifact, out_dir=tmp_path / "profile", runs=3, warmup=1)
    assert isinstance(profiled, Report) and profiled.artifacts[0].status == "ok" and profiled.source.framework == "artifact"
    assert profiled.artifacts[0].extra["inputs"][0]["shape"] == [1, 1, 8, 8]
    assert profiled.to_json()["artifacts"][0]["inputs"][0]["shape"] == [1, 1, 8, 8]
