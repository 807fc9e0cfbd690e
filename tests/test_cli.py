"""The command line: help, plugin listing, and every documented exit code, through typer's CliRunner
and through the installed console entry (subprocess) where plugin discovery must start fresh."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_pipeline.cli import app

from .conftest import run_cli
from .thirdparty import install_thirdparty

runner = CliRunner()


def test_help_reads_well_and_lists_exit_codes() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for word in ("build", "plugins", "targets", "Exit codes"):
        assert word in result.output
    build_help = runner.invoke(app, ["build", "--help"])
    assert build_help.exit_code == 0 and "--target" in build_help.output and "--json" in build_help.output


def test_cli_and_plugin_listing_import_no_ml_framework() -> None:
    code = ("import sys; from edge_pipeline import registry; "
            "import edge_pipeline.cli.app, edge_pipeline.building.pipeline;"
            "[registry.describe(k) for k in registry.KINDS];"
            "heavy = [m for m in ('torch', 'tensorflow', 'executorch', 'litert_torch', 'targets.exporters.pte')"
            " if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_plugins_json_lists_every_kind() -> None:
    result = runner.invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0
    rows = {(r["kind"], r["name"]) for r in json.loads(result.output)["plugins"]}
    assert {("exporter", "pte"), ("exporter", "tflite"), ("exporter", "ptl"), ("transform", "xnnpack-int8"),
            ("transform", "litert-int8"), ("runner", "executorch"), ("runner", "litert"),
            ("runner", "lite-interpreter"), ("target", "android")} <= rows


def test_targets_lists_android_outputs() -> None:
    result = runner.invoke(app, ["targets", "--json"])
    assert result.exit_code == 0
    (android,) = [t for t in json.loads(result.output)["targets"] if t["name"] == "android"]
    assert android["outputs"] == ["tflite:fp32", "tflite:int8", "pte:fp32", "pte:int8"]


def test_unknown_target_exits_2_and_suggests(tmp_path: Path, cache_dir: Path) -> None:
    result = runner.invoke(app, ["build", "--target", "andriod", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown target 'andriod'" in result.output and "Did you mean 'android'?" in result.output
    assert not (tmp_path / "andriod").exists()


def test_bad_toml_key_exits_2_with_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "edgepipe.toml").write_text("[targets.android]\nformat = ['pte:fp32']\n")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["build", "--json"])
    assert result.exit_code == 2
    payload = json.loads(result.stdout.splitlines()[0])
    assert payload["error"]["type"] == "ConfigError" and "targets.android.format" in payload["error"]["message"]


def test_unknown_format_and_precision_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "edgepipe.toml").write_text("[targets.android]\nformats = ['tflte:fp32']\n")
    result = runner.invoke(app, ["build"])
    assert result.exit_code == 2 and "Did you mean 'tflite'?" in result.output
    (tmp_path / "edgepipe.toml").write_text("[targets.android]\nformats = ['ptl:int8']\n")
    result = runner.invoke(app, ["build"])
    assert result.exit_code == 2 and "'ptl:int8' is not offered" in result.output


def test_unknown_example_exits_2(tmp_path: Path, cache_dir: Path) -> None:
    result = runner.invoke(app, ["build", "--example", "torch-digts", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "Did you mean 'torch-digits'?" in result.output


@pytest.mark.slow
def test_budget_failure_exits_1_and_names_the_metric(android_build: dict, tmp_path: Path) -> None:
    (tmp_path / "edgepipe.toml").write_text("[targets.android.budgets]\nmax-size-kb = 1\nmax-accuracy-drop = 5\n")
    out = android_build["out"]
    proc = run_cli("build", "--target", "android", "--out", str(out / "gated"), cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "size_kb" in proc.stdout and "exceeds limit 1" in proc.stdout
    report = json.loads((out / "gated" / "android" / "report.json").read_text())
    assert report["status"] == "gate_failed" and not report["passed"]
    failing = [c for c in report["checks"] if not c["passed"]]
    assert {c["metric"] for c in failing} == {"size_kb"} and len(failing) == 4
    assert all(c["passed"] for c in report["checks"] if c["metric"] == "accuracy_drop_pt")


@pytest.fixture()
def thirdparty_env(tmp_path: Path) -> dict[str, str]:
    site = install_thirdparty(tmp_path / "site")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}


def test_third_party_plugins_are_discovered(thirdparty_env: dict[str, str]) -> None:
    proc = run_cli("plugins", "--json", env=thirdparty_env)
    rows = {(r["name"], r["distribution"]) for r in json.loads(proc.stdout)["plugins"]}
    assert ("crash", "edgepipe-thirdparty") in rows and ("pte", "edgepipe") in rows


def test_missing_plugin_dependency_exits_3_with_install_hint(thirdparty_env: dict[str, str], tmp_path: Path,
                                                            cache_dir: Path) -> None:
    (tmp_path / "edgepipe.toml").write_text("[targets.android]\nformats = ['needsdep:fp32']\n")
    proc = run_cli("build", "--out", str(tmp_path / "out"), cwd=tmp_path, env=thirdparty_env)
    assert proc.returncode == 3, proc.stderr
    assert "edgepipe_package_that_is_not_installed" in proc.stderr and "pip install" in proc.stderr


@pytest.mark.slow
def test_a_crashing_converter_fails_only_its_artifact(thirdparty_env: dict[str, str], tmp_path: Path,
                                                      android_build: dict) -> None:
    (tmp_path / "edgepipe.toml").write_text("[targets.android]\nformats = ['crash:fp32', 'tflite:fp32']\n")
    out = tmp_path / "out"
    proc = run_cli("build", "--out", str(out), "--json", cwd=tmp_path, env=thirdparty_env)
    assert proc.returncode == 4, proc.stderr
    report = json.loads(proc.stdout)
    crash, tflite = report["artifacts"]
    assert crash["status"] == "failed" and "SIGSEGV" in crash["error"]["message"] and crash["path"] is None
    assert tflite["status"] == "ok" and (out / "android" / "model-fp32.tflite").is_file()
    assert not list((out / "android").glob("*.crash")) and not list(out.rglob("*.partial"))


def test_targets_lists_the_builtin_profiles_with_runners() -> None:
    result = runner.invoke(app, ["targets", "--json"])
    rows = {t["name"]: t for t in json.loads(result.output)["targets"]}
    assert {"android", "ios", "web", "linux-arm64", "mcu"} <= set(rows)
    assert rows["mcu"]["outputs"] == ["tflite:int8"] and rows["mcu"]["budgets"] == {"max-size-kb": 256.0}
    assert rows["linux-arm64"]["runners"] == ["litert", "litert-decoder", "onnxruntime", "ort-genai"]
    assert rows["web"]["bundle"] == "web"


def test_user_defined_target_extends_a_builtin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "edgepipe.toml").write_text(
        "[targets.pixel]\nextends = 'android'\nformats = ['pte:int8']\nbudgets = { max-size-kb = 64 }\n"
        "[targets.broken]\nextends = 'andorid'\n")
    broken = runner.invoke(app, ["targets"])
    assert broken.exit_code == 2 and "targets.broken.extends must name a built-in target" in broken.output
    (tmp_path / "edgepipe.toml").write_text(
        "[targets.pixel]\nextends = 'android'\nformats = ['pte:int8']\nbudgets = { max-size-kb = 64 }\n")
    rows = {t["name"]: t for t in json.loads(runner.invoke(app, ["targets", "--json"]).output)["targets"]}
    assert rows["pixel"]["outputs"] == ["pte:int8"] and rows["pixel"]["budgets"] == {"max-size-kb": 64.0}
    result = runner.invoke(app, ["build", "--target", "pixl"])
    assert result.exit_code == 2 and "Did you mean 'pixel'?" in result.output


def test_the_summary_prints_validation_notes_once(capsys: pytest.CaptureFixture[str]) -> None:
    """Validation's own notes (a small evaluation set) follow the table, once each; other warnings stay in
    report.md."""
    import typer

    from edge_pipeline.cli.app import _finish
    from edge_pipeline.report import Report

    data = json.loads((Path(__file__).parent / "fixtures" / "report-v2.json").read_text())
    for artifact in data["artifacts"]:
        artifact["validation"]["warnings"] = ["only 10 evaluation samples (< 200)"]
    data["warnings"] = ["tflite:int8 is slower than its fp32 twin", "only 10 evaluation samples (< 200)"]
    with pytest.raises(typer.Exit) as exited:
        _finish(Report.from_json(data), Path("out") / "android", as_json=False)
    out = capsys.readouterr().out
    assert exited.value.exit_code == 0 and out.count("only 10 evaluation samples") == 1 and "slower" not in out


def test_stage_progress_renders_typed_events() -> None:
    import io

    from rich.console import Console

    from edge_pipeline.cli.render import StageProgress
    from edge_pipeline.progress import Phase, ProgressEvent

    console = Console(file=io.StringIO(), width=200)
    with StageProgress(console) as progress:
        progress(ProgressEvent("source", Phase.START))
        progress(ProgressEvent("source", Phase.DONE, cached=True))
        progress(ProgressEvent("export tflite:int8", Phase.FAILED, message="boom"))
        progress(ProgressEvent("validate+profile coreml:fp32", Phase.SKIPPED, message="no runtime here"))
    text = console.file.getvalue()
    assert "✓ source (cached)" in text and "✗ export tflite:int8: boom" in text
    assert "- validate+profile coreml:fp32: no runtime here" in text
