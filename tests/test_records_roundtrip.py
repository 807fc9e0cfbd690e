"""Every typed record a real build wrote (worker jobs and results in the stage cache) and the report read back
through the one codec and written again give the same JSON, byte for byte: nothing is lost or reinterpreted
when a record crosses a process or file boundary."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_pipeline.codec import decode, encode
from edge_pipeline.records import STAGES, Exported, Measurement, SourceRecord
from edge_pipeline.report.model import Report

CACHED = {"source": SourceRecord, "export": Exported, "measure": Measurement}


def _same_bytes(data: object, kind: type) -> None:
    again = encode(decode(kind, data))
    assert json.dumps(again, sort_keys=False) == json.dumps(data, sort_keys=False), kind.__name__


@pytest.mark.slow
def test_cached_stage_records_and_worker_jobs_round_trip(android_build: dict, cache_dir: Path) -> None:
    seen: dict[str, int] = {}
    for stage, kind in CACHED.items():
        for done in sorted((cache_dir / "stages" / stage).glob("*/done.json")):
            _same_bytes(json.loads(done.read_text()), kind)
            seen[stage] = seen.get(stage, 0) + 1
    for job_file in sorted((cache_dir / "stages").glob("*/*/job/job.json")):
        payload = json.loads(job_file.read_text())
        job_type, result_type = STAGES[payload["stage"]]
        _same_bytes(payload["job"], job_type)
        seen[f"{payload['stage']} job"] = seen.get(f"{payload['stage']} job", 0) + 1
        result_file = job_file.parent / "result.json"   # what the worker process sent back (none: it crashed)
        result = json.loads(result_file.read_text()) if result_file.is_file() else {"ok": False}
        if result["ok"]:
            _same_bytes(result["result"], result_type)
            seen[f"{payload['stage']} result"] = seen.get(f"{payload['stage']} result", 0) + 1
    # the android build: one source, four exports and four measurements, each with its job
    assert seen.get("source") and seen.get("export", 0) >= 4 and seen.get("measure", 0) >= 4, seen
    assert seen.get("export job", 0) >= 4 and seen.get("measure job", 0) >= 4, seen
    assert seen.get("export result", 0) >= 4 and seen.get("measure result", 0) >= 4, seen


@pytest.mark.slow
def test_the_report_round_trips_byte_for_byte(android_build: dict) -> None:
    text = (android_build["out"] / "android" / "report.json").read_text()
    data = json.loads(text)
    report = Report.from_json(data)
    assert json.dumps(report.to_json()) == json.dumps(data)
    routes = {a.label: [(s.step, s.tool) for s in a.export.route or ()] for a in report.artifacts if a.export}
    pte = [("capture", "torch.export"), ("lower", "xnnpack"), ("serialize", "pte")]
    assert routes == {"tflite:fp32": [("serialize", "tflite")],
                      "tflite:int8": [("quantize", "litert-int8"), ("serialize", "tflite")],
                      "pte:fp32": pte, "pte:int8": [("quantize", "xnnpack-int8"), *pte]}
    versions = {s.tool: s.versions for a in report.artifacts if a.export for s in a.export.route or ()}
    assert versions["xnnpack"]["executorch"] and versions["litert-int8"]["litert-torch"]


def test_jobs_the_cache_does_not_keep_round_trip(tmp_path: Path) -> None:
    from edge_pipeline.records import ProfileJob, SourceJob
    from edge_pipeline.types import ProfileSettings, SourceSpec

    spec = SourceSpec(example=None, model="pkg.mod:make", example_inputs={"ids": {"shape": [1, 8], "dtype": "int64"}},
                      prune={"amount": 0.5, "kind": "structured", "fine_tune": None, "scope": "global"})
    for record in (SourceJob(spec, tmp_path / "w"),
                   ProfileJob(tmp_path / "m.tflite", "litert", "android", None, ProfileSettings(threads=(1, 0)), None,
                              tmp_path / "r.onnx", "onnxruntime")):
        data = json.loads(json.dumps(encode(record)))
        assert decode(type(record), data) == record
        _same_bytes(data, type(record))
