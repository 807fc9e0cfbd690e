"""Issue 14: the typed report. to_json() is report.json exactly; version 2 reports are still read (and gated)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_pipeline.building.report_builder import artifact_report, build_report
from edge_pipeline.cli import app
from edge_pipeline.errors import ConfigError
from edge_pipeline.records import ArtifactResult, Exported, ExportResult, Measurement, StageError, Status
from edge_pipeline.report.html import to_html
from edge_pipeline.report.junit import to_junit
from edge_pipeline.report.markdown import to_markdown
from edge_pipeline.report.model import SCHEMA_VERSION, ArtifactReport, Latency, Report, Validation
from edge_pipeline.types import OutputSpec

ROOT = Path(__file__).resolve().parents[1]
V2 = Path(__file__).parent / "fixtures" / "report-v2.json"
runner = CliRunner()


def v2() -> dict:
    return json.loads(V2.read_text())


def test_a_version_2_report_reads_into_typed_fields_and_writes_back_unchanged() -> None:
    data = v2()
    report = Report.from_json(data)
    assert report.schema_version == 2 and report.status == "passed" and report.passed is True
    first = report.artifacts[0]
    assert isinstance(first, ArtifactReport) and first.label == "tflite:fp32" and first.status == "ok"
    assert isinstance(first.latency_ms, Latency) and first.latency_ms.p50 == data["artifacts"][0]["latency_ms"]["p50"]
    assert isinstance(first.validation, Validation) and first.validation.outputs[0].name == "output"
    assert first.sha256 == data["artifacts"][0]["sha256"] and first.measured_on == data["artifacts"][0]["measured_on"]
    assert report.to_json() == data and json.dumps(report.to_json()) == json.dumps(data)   # same keys, same order


def test_other_versions_are_refused() -> None:
    with pytest.raises(ConfigError, match="schema_version is 1"):
        Report.from_json({**v2(), "schema_version": 1})


def test_gate_reads_a_version_2_report(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text(V2.read_text())
    passed = runner.invoke(app, ["gate", str(path), "--json"])
    assert passed.exit_code == 0, passed.output
    assert json.loads(passed.output)["passed"] is True
    failed = runner.invoke(app, ["gate", str(path), "--budget", "max-size-kb=1", "--json", "--junit",
                                 str(tmp_path / "j.xml")])
    checks = json.loads(failed.output)["checks"]
    assert failed.exit_code == 1 and {c["metric"] for c in checks if not c["passed"]} == {"size_kb"}
    assert 'failures="2"' in (tmp_path / "j.xml").read_text()
    baseline = tmp_path / "baseline.json"
    assert runner.invoke(app, ["baseline", "update", str(path), "--out", str(baseline)]).exit_code == 0
    assert json.loads(baseline.read_text())["schema_version"] == SCHEMA_VERSION
    assert runner.invoke(app, ["gate", str(path), "--baseline", str(baseline)]).exit_code == 0


def _built() -> Report:
    latency = Latency.from_measure({"p50": 1.0, "p90": 1.2, "noise": 0.01, "threads": 1, "measured_on": "host A",
                                    "other": 1})
    validation = Validation.from_json({"passed": True, "outputs": [{"name": "y", "passed": True}], "agreement": 1.0,
                                       "max_abs_diff": 0.0, "warnings": ["only 10 evaluation samples"]})
    measured = Measurement(runtime="onnxruntime", runtime_version="1", validation=validation, accuracy=0.9,
                           latency=(latency,))
    exported = Exported(ExportResult({}, 0.0, ()), "m.onnx", "0" * 64, 4096, 2048)
    ok = ArtifactResult(OutputSpec("onnx", "fp32"), status=Status.OK, path=Path("m.onnx"), exported=exported,
                        measurement=measured)
    failed = ArtifactResult(OutputSpec("pte", "int8"), status=Status.FAILED,
                            error=StageError(stage="export", type="StageFailed", message="boom"))
    artifacts = [artifact_report(ok, 0.95, "model-fp32.onnx", runner="onnxruntime"),
                 artifact_report(failed, 0.95, None, runner="executorch")]
    return build_report(target="android", source={"framework": "torch", "params": 10, "size_bytes": 40,
                                                   "accuracy": 0.95, "fingerprint": "f", "pruning": None},
                        artifacts=artifacts, budgets={"max-size-kb": 8}, warnings=["w"], timings={"source": 0.5},
                        started=0.0, tools=("edgepipe",), config={"command": "build"})


def test_the_builder_decides_status_checks_and_version_once() -> None:
    report = _built()
    assert report.schema_version == 3 and report.status == "stage_failed" and report.passed is False
    assert [c.metric for c in report.checks] == ["size_kb"] and report.checks[0].passed
    ok, failed = report.artifacts
    assert ok.accuracy_drop == pytest.approx(5.0) and ok.latency_ms.p50 == 1.0 and failed.error.message == "boom"
    data = report.to_json()
    assert list(data)[:5] == ["schema_version", "edgepipe_version", "target", "passed", "status"]
    assert "bundle" not in data and "log" not in data and data["artifacts"][0]["runner"] == "onnxruntime"
    assert "other" not in data["artifacts"][0]["latency_ms"] and data["stage_timings_s"]["source"] == 0.5
    assert Report.from_json(json.loads(json.dumps(data))).to_json() == json.loads(json.dumps(data))


def test_the_shipped_schema_accepts_versions_2_and_3() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "edge_pipeline" / "schemas" / "report.schema.json").read_text())
    jsonschema.validate(v2(), schema)
    jsonschema.validate({**v2(), "schema_version": 3}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**v2(), "schema_version": 4}, schema)


def test_views_render_the_typed_report() -> None:
    report = Report.from_json(v2())
    assert to_markdown(report).startswith("# edgepipe build: android (PASSED)")
    assert "<!doctype html>" in to_html(report) and 'tests="2"' in to_junit(report)
    built = _built()
    assert "FAILED pte:int8 (export): boom" in to_markdown(built) and 'failures="1"' in to_junit(built)
