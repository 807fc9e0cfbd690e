"""Reports and baselines are read strictly, and text is shown as written (issue 19, classes 2 and 3).

A hand-edited, truncated or foreign report must stop at the door: exit 2, one line naming the file and the
field's JSON path, no JUnit file written. Text from users and libraries (paths, error messages, format names) is
never parsed as Rich markup and never carries terminal escape codes into the terminal or into XML."""
from __future__ import annotations

import copy
import io
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from edge_pipeline.cli.render import StageProgress, show
from edge_pipeline.progress import Phase, ProgressEvent
from edge_pipeline.report import baseline as baseline_module
from edge_pipeline.report.model import Report

from .test_hostile_inputs import _art, _fake_build, _report, invoke, json_error, one_error_line

ANSI_RED = "\x1b[31m"


def _with(path: str, value: Any, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A good report with one field (a dotted path; an int is a list index) set to `value`."""
    report = copy.deepcopy(body or _report([_art("tflite", "int8")]))
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = report
    for key in parents:
        node = node[key]
    node[last] = value
    return report


BAD_FIELDS = {
    "size-zero": ("artifacts.0.size_bytes", 0, "artifacts[0].size_bytes must be > 0"),
    "size-10-to-the-400": ("artifacts.0.size_bytes", 10 ** 400, "larger than any real figure"),
    "size-float": ("artifacts.0.size_bytes", 12.5, "artifacts[0].size_bytes must be an integer"),
    "p50-negative": ("artifacts.0.latency_ms.p50", -5, "artifacts[0].latency_ms.p50 must be > 0"),
    "p50-infinite": ("artifacts.0.latency_ms.p50", float("inf"), "artifacts[0].latency_ms.p50 is inf"),
    "threads-zero": ("artifacts.0.latency_ms.threads", 0, "artifacts[0].latency_ms.threads must be >= 1"),
    "accuracy-5": ("artifacts.0.accuracy", 5.0, "artifacts[0].accuracy must be >= 0 and <= 1"),
    "agreement-negative": ("artifacts.0.agreement", -0.1, "artifacts[0].agreement"),
    "status-unknown": ("artifacts.0.status", "exploded", "artifacts[0].status must be one of pending, ok, failed"),
    "report-status-unknown": ("status", "green", "status must be one of passed"),
    "passed-a-string": ("passed", "yes", "passed must be a boolean"),
    "schema-version-true": ("schema_version", True, "schema_version is True"),
    "check-without-fields": ("checks", [{"nonsense": 1}], "checks[0].artifact is missing"),
    "check-limit-a-string": ("checks", [{"artifact": "a", "metric": "m", "limit": "x", "passed": True,
                                         "message": "m"}], "checks[0].limit must be a number"),
    "nan-in-metadata": ("artifacts.0.export", {"metadata": {"x": float("nan")}},
                        "artifacts[0].export.metadata.x is nan"),
    "infinite-budget": ("budgets", {"max-size-kb": float("inf")}, "budgets.max-size-kb is inf"),
    "source-missing": ("source", None, "source must be an object"),
    "warnings-not-text": ("warnings", [1], "warnings[0] must be a string"),
    "deep-config": ("config", json.loads("[" * 80 + "]" * 80), "config must be an object"),
    "deep-host": ("host", {"a": json.loads("[" * 80 + "]" * 80)}, "nested more than 64 levels"),
}


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
def test_a_wrong_report_field_is_exit_2_naming_its_json_path(case: str, tmp_path: Path) -> None:
    path, value, needle = BAD_FIELDS[case]
    report = tmp_path / "report.json"
    report.write_text(json.dumps(_with(path, value)))
    junit = tmp_path / "gate.xml"
    result = invoke("gate", report, "--junit", junit, "--json")
    line = one_error_line(result, 2, needle, str(report))
    assert json_error(result)["type"] == "ConfigError" and "internal error" not in line
    assert not junit.exists()


def test_an_error_object_with_integer_fields_under_junit_is_exit_2(tmp_path: Path) -> None:
    artifact = _art("tflite", "int8", "failed")
    artifact["error"] = {"stage": 3, "type": 4, "message": 5}
    (tmp_path / "report.json").write_text(json.dumps(_report([artifact])))
    one_error_line(invoke("gate", tmp_path / "report.json", "--junit", tmp_path / "gate.xml"), 2,
                   "artifacts[0].error.stage must be a string")
    assert not (tmp_path / "gate.xml").exists()


def test_a_custom_metric_keeps_its_own_scale(tmp_path: Path) -> None:
    """An accuracy of 31.5 is impossible for top-1 but fine for a custom metric (PSNR in dB, say)."""
    artifact = _art("tflite", "int8", accuracy=31.5, accuracy_drop=0.4,
                    validation={"passed": True, "metric": "mymetrics:psnr", "accuracy": 31.5})
    (tmp_path / "report.json").write_text(json.dumps(_report([artifact], source={"accuracy": 31.9})))
    result = invoke("gate", tmp_path / "report.json")
    assert result.exit_code == 0, result.output


def test_a_report_that_is_a_fifo_is_refused_without_reading_it(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "report.json")
    one_error_line(invoke("gate", tmp_path / "report.json"), 2, "is not a regular file")


def test_an_oversized_report_is_refused_before_it_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(baseline_module, "MAX_REPORT_BYTES", 1024)
    (tmp_path / "report.json").write_text(json.dumps(_report([_art("tflite", "int8")] * 20)))
    one_error_line(invoke("gate", tmp_path / "report.json"), 2, "larger than any edgepipe report")


# ---- baselines ---------------------------------------------------------------------------------------------------

def _baseline(tmp_path: Path, **entry: Any) -> Path:
    good = {"size_bytes": 2048, "accuracy": 0.95, "agreement": 1.0, "measured_on": "host A",
            "latency_ms": {"p50": 1.0, "p90": 1.1, "noise": 0.0, "threads": 1}}
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({"schema_version": 3, "kind": "edgepipe-baseline", "target": "android",
                                "artifacts": {"tflite:int8": {**good, **entry}}}))
    return path


BAD_BASELINES = {
    "p50-zero": ({"latency_ms": {"p50": 0.0}}, "artifacts.tflite:int8.latency_ms.p50 must be > 0"),
    "size-a-string": ({"size_bytes": "big"}, "artifacts.tflite:int8.size_bytes must be an integer"),
    "size-zero": ({"size_bytes": 0}, "artifacts.tflite:int8.size_bytes must be > 0"),
    "latency-a-list": ({"latency_ms": [1.0]}, "artifacts.tflite:int8.latency_ms must be an object"),
    "accuracy-nan": ({"accuracy": float("nan")}, "artifacts.tflite:int8.accuracy is nan"),
}


@pytest.mark.parametrize("case", sorted(BAD_BASELINES))
def test_a_wrong_baseline_field_is_exit_2_naming_it(case: str, tmp_path: Path) -> None:
    entry, needle = BAD_BASELINES[case]
    (tmp_path / "report.json").write_text(json.dumps(_report([_art("tflite", "int8")])))
    result = invoke("gate", tmp_path / "report.json", "--baseline", _baseline(tmp_path, **entry), "--json")
    one_error_line(result, 2, needle, "baseline ")
    json_error(result)


def test_an_empty_latency_in_the_baseline_is_skipped_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text(json.dumps(_report([_art("tflite", "int8")])))
    result = invoke("gate", tmp_path / "report.json", "--baseline", _baseline(tmp_path, latency_ms={}))
    assert result.exit_code == 0, result.output
    assert "latency not measured in both reports" in result.stdout


def test_a_baseline_accuracy_the_build_did_not_measure_fails(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text(json.dumps(_report([_art("tflite", "int8", accuracy=None)])))
    result = invoke("gate", tmp_path / "report.json", "--baseline", _baseline(tmp_path))
    assert result.exit_code == 1, result.output
    assert "the loss cannot be computed" in result.stdout


@pytest.mark.parametrize("option", ["--max-size-growth", "--max-accuracy-loss", "--max-latency-growth"])
def test_a_nan_relative_limit_is_exit_2_naming_the_option(option: str, tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text(json.dumps(_report([_art("tflite", "int8")])))
    result = invoke("gate", tmp_path / "report.json", "--baseline", _baseline(tmp_path), option, "nan")
    one_error_line(result, 2, option, "finite")


def test_bundle_of_a_report_without_source_is_exit_2(tmp_path: Path) -> None:
    folder = _fake_build(tmp_path, "model-fp32.tflite")
    report = json.loads((folder / "report.json").read_text())
    del report["source"]
    (folder / "report.json").write_text(json.dumps(report))
    one_error_line(invoke("bundle", "--target", "linux-arm64", "--out", tmp_path / "out"), 2, "source is missing")
    assert not (folder / "bundle").exists()


# ---- text is shown as written ------------------------------------------------------------------------------------

HOSTILE_TEXT = f"[/data/model.onnx] {ANSI_RED}[bold red]boom[/] \x07"


def test_error_text_with_markup_and_escape_codes_is_shown_literally(tmp_path: Path) -> None:
    artifact = _art("tflite", "int8", "failed")
    artifact["error"]["message"] = HOSTILE_TEXT
    (tmp_path / "report.json").write_text(json.dumps(_report([artifact])))
    result = invoke("gate", tmp_path / "report.json", "--junit", tmp_path / "gate.xml")
    assert result.exit_code == 1, result.output
    assert "[/data/model.onnx]" in result.stdout and "[bold red]boom[/]" in result.stdout
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    failure = ET.parse(tmp_path / "gate.xml").getroot().find(".//failure")   # well-formed XML 1.0
    assert failure is not None and failure.get("message", "").startswith("[/data/model.onnx] [bold red]boom[/]")


def test_an_output_path_with_markup_is_printed_as_written(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text(json.dumps(_report([_art("tflite", "int8")])))
    out = tmp_path / "ci[/x]" / "base.json"
    out.parent.mkdir(parents=True)
    result = invoke("baseline", "update", tmp_path / "report.json", "--out", out)
    assert result.exit_code == 0, result.output
    assert str(out) in result.stdout.replace("\n", "") and out.is_file()


def test_a_missing_file_whose_name_is_markup_is_named_literally(tmp_path: Path) -> None:
    missing = tmp_path / "[/data]" / "[bold]report.json"
    one_error_line(invoke("gate", missing), 2, str(missing))


def test_progress_lines_and_tables_never_parse_markup() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200)
    with StageProgress(console) as progress:
        progress(ProgressEvent("export [/]tflite:int8", Phase.FAILED, message=HOSTILE_TEXT))
    show(console, HOSTILE_TEXT, mark="✗", style="red")
    text = buffer.getvalue()
    assert text.count("[/data/model.onnx]") == 2 and "export [/]tflite:int8" in text
    assert "\x07" not in text and ANSI_RED + "[bold" not in text


def test_a_stage_error_keeps_the_users_text_without_escape_codes() -> None:
    from edge_pipeline.errors import StageFailed
    from edge_pipeline.report.model import StageError

    message = f"{ANSI_RED}torch.onnx export failed\x1b[0m:\nline two <&> [/]"
    error = StageError.of("export", StageFailed(message))
    assert error.message == "torch.onnx export failed:\nline two <&> [/]"
    report = Report.from_json(_report([_art("tflite", "int8", "failed", error=error.to_json())]))
    assert report.artifacts[0].error == error


def test_a_source_whose_weights_cannot_be_counted_is_still_a_report() -> None:
    """An ONNX model that keeps its weights in Constant nodes has 0 countable initializer bytes: a real report
    (the strict reader refuses an artifact of 0 bytes, not a source of them)."""
    report = Report.from_json(_report([_art("tflite", "int8")], source={"framework": "onnx", "size_bytes": 0}))
    assert report.source.size_bytes == 0
