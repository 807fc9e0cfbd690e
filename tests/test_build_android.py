"""End to end: `edgepipe build --target android` on the built-in example, real converters and runtimes."""
from __future__ import annotations

import json
import time

import pytest

from edge_pipeline.fsutil import sha256_file

from .conftest import run_cli

pytestmark = pytest.mark.slow
EXPECTED = {("tflite", "fp32"), ("tflite", "int8"), ("pte", "fp32"), ("pte", "int8")}
ARTIFACT_FIELDS = {"format", "precision", "path", "size_bytes", "size_compressed_bytes", "sha256", "runtime",
                   "runtime_version", "latency_ms", "accuracy", "accuracy_drop", "agreement", "max_abs_diff",
                   "measured_on"}


def by_key(report: dict) -> dict[tuple[str, str], dict]:
    return {(a["format"], a["precision"]): a for a in report["artifacts"]}


def test_writes_the_four_validated_artifacts(android_build: dict) -> None:
    report, folder = android_build["report"], android_build["out"] / "android"
    assert report["passed"] and report["target"] == "android"
    assert set(by_key(report)) == EXPECTED
    for art in report["artifacts"]:
        assert ARTIFACT_FIELDS <= set(art), ARTIFACT_FIELDS - set(art)
        assert art["status"] == "ok" and (folder / art["path"]).is_file()
        assert sha256_file(folder / art["path"]) == art["sha256"]
        assert (folder / art["path"]).stat().st_size == art["size_bytes"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["manifest.json", "report.json", "report.md", "report.html", "report.junit.xml", "samples.json", "recorded.npz",
         "model-fp32.tflite", "model-int8.tflite", "model-fp32.pte", "model-int8.pte", "bundle",
         "android-android-bundle.zip", *(["build.log"] if report.get("log") else []),   # a log only when non-empty
         # Model Explorer overlays beside the .tflite artifacts (it reads no .pte): SQNR for the quantized one
         *(f"model-{p}.tflite.{o}.json" for p in ("fp32", "int8") for o in ("latency-ms", "precision")),
         "model-int8.tflite.sqnr-db.json"])
    drawn = {f"{a['format']}:{a['precision']}" for a in report["artifacts"] if a.get("graph_overlays")}
    assert drawn == {"tflite:fp32", "tflite:int8"}


def test_source_section(android_build: dict) -> None:
    source = android_build["report"]["source"]
    assert source["framework"] == "torch" and source["params"] == 38_282
    assert source["size_bytes"] == 38_282 * 4 and source["accuracy"] > 0.93
    assert source["eval_samples"] == 360 and source["calibration_samples"] == 180


def test_int8_is_small_accurate_and_agrees(android_build: dict) -> None:
    arts = by_key(android_build["report"])
    for fmt in ("tflite", "pte"):
        fp32, int8 = arts[(fmt, "fp32")], arts[(fmt, "int8")]
        assert int8["size_bytes"] <= 0.35 * fp32["size_bytes"]
        assert int8["accuracy_drop"] <= 1.0
        assert fp32["max_abs_diff"] < 1e-3
    for art in arts.values():
        assert art["agreement"] >= 0.98
        assert art["size_compressed_bytes"] < art["size_bytes"]


def test_runtimes_threads_and_where_measured(android_build: dict) -> None:
    arts = by_key(android_build["report"])
    assert arts[("tflite", "int8")]["runtime"] == "LiteRT interpreter"
    assert (arts[("pte", "int8")]["runtime"] == "ExecuTorch runtime"
            and arts[("pte", "int8")]["runtime_version"] == "1.5.1")
    for art in arts.values():
        lat = art["latency_ms"]
        assert lat["threads"] == 1 and 0 < lat["p50"] <= lat["p90"] and lat["runs"] == 100
        assert art["measured_on"].startswith("host-emulated android profile on ")
        assert "1 thread" in art["measured_on"]
        assert len(art["latency_by_threads"]) >= 1


def test_pte_reports_delegation(android_build: dict) -> None:
    meta = by_key(android_build["report"])[("pte", "int8")]["export"]["metadata"]
    assert meta["backend"] == "XNNPACK" and meta["delegated_nodes"] > 10
    assert meta["non_delegated_nodes"] <= 2


def test_per_op_profiles(android_build: dict) -> None:
    arts = by_key(android_build["report"])
    pte = arts[("pte", "int8")]["op_profile"]
    assert pte["timed"] and pte["source"].startswith("ExecuTorch ETDump")
    assert any("Convolution" in op["op"] for op in pte["top"]) and all(op["delegated"] for op in pte["top"])
    assert abs(sum(op["share"] for op in pte["top"]) - 1.0) < 0.2
    tflite = arts[("tflite", "int8")]["op_profile"]
    assert tflite["timed"] and tflite["source"].startswith("LiteRT isolated-op replay")
    assert tflite["top"][0]["op"] in {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}   # the compute, not a reshape
    assert any(op["layer"] and "Conv2d" in op["layer"] for op in tflite["top"])          # named after the torch layer
    md = (android_build["out"] / "android" / "report.md").read_text()
    assert "### Top ops by time: pte:int8" in md and "### Top ops by time: tflite:int8" in md


def test_manifest_lists_every_artifact_with_hash(android_build: dict) -> None:
    folder = android_build["out"] / "android"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {(a["format"], a["precision"]) for a in manifest["artifacts"]} == EXPECTED
    for entry in manifest["artifacts"]:
        assert sha256_file(folder / entry["path"]) == entry["sha256"]


def test_markdown_report_and_terminal_table(android_build: dict) -> None:
    md = (android_build["out"] / "android" / "report.md").read_text()
    assert md.startswith("# edgepipe build: android (PASSED)")
    assert md.count("| ok |") == 4 and "not on a device" in md
    assert "PASSED" in android_build["stdout"] and "✓ export pte:int8" in android_build["stderr"]


def test_unchanged_rebuild_is_cached_fast_and_byte_identical(android_build: dict) -> None:
    out = android_build["out"]
    before = {a["path"]: a["sha256"] for a in android_build["report"]["artifacts"]}
    started = time.perf_counter()
    proc = run_cli("build", "--target", "android", "--out", str(out), "--json", cwd=out)   # as the cold build ran
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert {a["path"]: sha256_file(out / "android" / a["path"]) for a in report["artifacts"]} == before
    assert all(a["cached"] == {"export": True, "measure": True} for a in report["artifacts"])
    assert report["source"]["cached"] is True and android_build["report"]["source"]["cached"] is False
    assert elapsed <= 0.25 * android_build["seconds"], (elapsed, android_build["seconds"])


def test_legacy_ptl_on_request_says_optimize_for_mobile_is_unavailable(android_build: dict, tmp_path) -> None:
    (tmp_path / "edgepipe.toml").write_text("[targets.android]\nformats = ['ptl:fp32']\n")
    proc = run_cli("build", "--out", str(tmp_path / "out"), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (art,) = json.loads(proc.stdout)["artifacts"]
    assert art["runtime"] == "PyTorch lite interpreter" and art["agreement"] == 1.0
    meta = art["export"]["metadata"]
    if not meta["optimized_for_mobile"]:   # the CPU wheel here lacks XNNPACK: reported, not a crash
        assert "optimize_for_mobile is unavailable" in meta["note"]
    assert any("no 'android' bundle" in w for w in json.loads(proc.stdout)["warnings"])
    assert (tmp_path / "out" / "android" / "model-fp32.ptl").is_file()
