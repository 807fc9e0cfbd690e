"""The Python API the CLI is a layer over: `edge_pipeline.build()`, `profile()`, `gate()`, `update_baseline()`,
`bundle()` and `tune()` (edge_pipeline/api.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import edge_pipeline
from edge_pipeline.errors import ConfigError
from edge_pipeline.report import Report

V2 = Path(__file__).parent / "fixtures" / "report-v2.json"


def test_importing_the_api_imports_no_ml_framework() -> None:
    code = ("import sys, edge_pipeline as e; e.build; e.profile; e.gate; e.bundle; e.tune; e.update_baseline; "
            "print(sorted(m for m in ('torch', 'tensorflow', 'onnxruntime', 'executorch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_bad_budget_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown budget 'max-size'"):
        edge_pipeline.build(budgets={"max-size": 1})


@pytest.mark.parametrize("options,message", [
    ({"prune_structured": True}, "need --prune AMOUNT"), ({"prune": 1.5}, "must be a fraction between 0 and 1"),
    ({"sensitivity": "sometimes"}, "on-failure, always, never"), ({"device": "adb"}, "cannot run a build's artifacts"),
    ({"target": "../x"}, "must be a plain file name")])
def test_build_options_are_checked_before_any_work(tmp_path: Path, options: dict, message: str) -> None:
    """The overrides the CLI's flags map to are the API's own keyword arguments, checked the same way."""
    with pytest.raises(ConfigError, match=message):
        edge_pipeline.build(out_dir=tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_gate_and_baseline_through_the_api(tmp_path: Path) -> None:
    passed = edge_pipeline.gate(V2)
    assert passed.passed and isinstance(passed.report, Report) and passed.checks == ()
    failed = edge_pipeline.gate(V2, budgets={"max-size-kb": 1}, junit=tmp_path / "j.xml")
    assert not failed.passed and {c.metric for c in failed.failed} == {"size_kb"}
    assert 'failures="2"' in (tmp_path / "j.xml").read_text()
    baseline = edge_pipeline.update_baseline(V2, out=tmp_path / "baseline.json")
    assert baseline.target == "android" and set(baseline.artifacts) == {"tflite:fp32", "tflite:int8"}
    assert json.loads((tmp_path / "baseline.json").read_text()) == baseline.to_json()
    compared = edge_pipeline.gate(Report.from_json(json.loads(V2.read_text())), baseline=tmp_path / "baseline.json")
    assert compared.passed and {c.kind for c in compared.checks} == {"baseline"}
    with pytest.raises(ConfigError, match="is a baseline, not a build report"):
        edge_pipeline.gate(tmp_path / "baseline.json")


def test_bundle_needs_a_build(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="build report not found"):
        edge_pipeline.bundle("web", out_dir=tmp_path)


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
    assert isinstance(profiled, Report) and profiled.artifacts[0].status == "ok"
    assert profiled.source.framework == "artifact"
    assert profiled.artifacts[0].extra["inputs"][0]["shape"] == [1, 1, 8, 8]
    assert profiled.to_json()["artifacts"][0]["inputs"][0]["shape"] == [1, 1, 8, 8]


# CLI option -> API parameter, where the names differ; `--json` only chooses how the CLI prints
RENAMED = {"out": "out_dir", "budget": "budgets", "no_cache": "use_cache", "max_memory": "max_memory_mb"}
CLI_ONLY = {"as_json"}
API_OF = {("baseline", "update"): "update_baseline"}


def test_every_cli_option_exists_in_the_api() -> None:
    """The CLI is a thin client: each command is an API function and each of its options a parameter."""
    import inspect

    import typer.main

    import edge_pipeline
    from edge_pipeline.cli import app as cli_app

    commands = []
    for name, command in typer.main.get_command(cli_app).commands.items():
        subcommands = getattr(command, "commands", None) or {}
        commands += [((name, sub), c) for sub, c in subcommands.items()] or [((name,), command)]
    assert len(commands) >= 8
    for path, command in commands:
        function = edge_pipeline.__dict__[API_OF.get(path, path[-1])]
        accepted = set(inspect.signature(function).parameters)
        missing = [p.name for p in command.params
                   if p.name not in CLI_ONLY and p.name not in accepted and RENAMED.get(p.name) not in accepted]
        assert not missing, (path, missing)


def test_plugins_and_targets_through_the_api() -> None:
    import edge_pipeline

    kinds = {info.kind for info in edge_pipeline.plugins()}
    assert kinds == {"exporter", "transform", "runner", "target", "transport", "bundler", "source"}
    android = next(t for t in edge_pipeline.targets() if t.name == "android")
    assert android.outputs == ("tflite:fp32", "tflite:int8", "pte:fp32", "pte:int8")
    assert set(android.runners) == {"litert", "executorch", "executorch-decoder", "litert-decoder"}
    assert android.threads == (1, "all")
    assert android.task_outputs == {"text-generation": ("pte:fp32", "pte:8da4w", "tflite:fp32",
                                                       "tflite:int8-dynamic")}
