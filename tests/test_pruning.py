"""Pruning before export: structured (channels really removed, torch-pruning) with the example's fine-tune
callback, and unstructured magnitude pruning whose zeros only compression realizes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run_cli

pytestmark = pytest.mark.slow
FINE_TUNE = "targets.examples.torch_digits:fine_tune"
KERAS_FINE_TUNE = "targets.examples.keras_digits:fine_tune"


def build_json(tmp_path: Path, formats: list[str], *flags: str) -> tuple[int, dict | None, str]:
    (tmp_path / "edgepipe.toml").write_text(f"[targets.android]\nformats = {json.dumps(formats)}\n")
    proc = run_cli("build", "--out", str(tmp_path / "out"), "--json", *flags, cwd=tmp_path)
    payload = json.loads(proc.stdout[proc.stdout.index("{"):]) if "{" in proc.stdout else None
    return proc.returncode, payload, proc.stderr


def test_structured_half_with_fine_tune_and_int8_is_small_and_accurate(android_build: dict, tmp_path: Path) -> None:
    dense = {(a["format"], a["precision"]): a for a in android_build["report"]["artifacts"]}
    code, report, err = build_json(tmp_path, ["tflite:int8", "pte:int8"], "--prune", "0.5", "--prune-structured",
                                   "--fine-tune", FINE_TUNE)
    assert code == 0, err[-2000:]
    pruning = report["source"]["pruning"]
    assert pruning["kind"] == "structured" and pruning["fine_tuned"]
    assert pruning["after"]["params"] < 0.35 * pruning["before"]["params"]
    assert pruning["after"]["macs"] < 0.5 * pruning["before"]["macs"]
    assert report["source"]["accuracy"] == android_build["report"]["source"]["accuracy"]   # drops vs the dense model
    for art in report["artifacts"]:
        dense_fp32 = dense[(art["format"], "fp32")]["size_bytes"]
        assert art["status"] == "ok" and art["size_bytes"] <= 0.15 * dense_fp32, (art["format"], art["size_bytes"])
        assert art["accuracy_drop"] <= 2.0
    assert "Pruned (structured, 0.5, fine-tuned)" in (tmp_path / "out" / "android" / "report.md").read_text()


def test_unstructured_zeros_shrink_only_the_zipped_size(android_build: dict, tmp_path: Path) -> None:
    dense = {(a["format"], a["precision"]): a for a in android_build["report"]["artifacts"]}[("tflite", "fp32")]
    code, report, err = build_json(tmp_path, ["tflite:fp32"], "--prune", "0.5", "--fine-tune", FINE_TUNE)
    assert code == 0, err[-2000:]
    pruning = report["source"]["pruning"]
    # the mask holds through fine-tuning: the zeros are still there afterwards
    assert pruning["kind"] == "unstructured" and pruning["fine_tuned"] and 0.45 <= pruning["after"]["sparsity"] <= 0.55
    assert pruning["after"]["params"] == pruning["before"]["params"]
    (art,) = report["artifacts"]
    assert art["status"] == "ok" and abs(art["size_bytes"] - dense["size_bytes"]) < 0.02 * dense["size_bytes"]
    assert art["size_compressed_bytes"] < 0.8 * dense["size_compressed_bytes"]


@pytest.mark.parametrize("flags, message", [
    (("--prune", "1.5"), "between 0 and 1"),
    (("--prune-structured",), "need --prune AMOUNT"),
    (("--prune", "0.5", "--fine-tune", "nosuchmodule:fn"), "module 'nosuchmodule' not found"),
])
def test_bad_pruning_settings_are_usage_errors(android_build: dict, tmp_path: Path, flags, message) -> None:
    code, _, err = build_json(tmp_path, ["tflite:fp32"], *flags)
    assert code == 2 and message in err
    assert not (tmp_path / "out" / "android").exists()


def test_a_fine_tune_callback_that_raises_is_named(android_build: dict, tmp_path: Path) -> None:
    (tmp_path / "broken_tune.py").write_text("def tune(model):\n    raise RuntimeError('out of data')\n")
    code, _, err = build_json(tmp_path, ["tflite:fp32"], "--prune", "0.5", "--fine-tune", "broken_tune:tune")
    assert code == 2 and "fine-tune callback 'broken_tune:tune' raised RuntimeError: out of data" in err


def test_keras_structured_half_with_fine_tune_and_int8_is_small_and_accurate(cache_dir: Path, tmp_path: Path) -> None:
    code, report, err = build_json(tmp_path, ["tflite:int8"], "--example", "keras-digits", "--prune", "0.5",
                                   "--prune-structured", "--fine-tune", KERAS_FINE_TUNE)
    assert code == 0, err[-2000:]
    pruning = report["source"]["pruning"]
    assert pruning["kind"] == "structured" and pruning["fine_tuned"]
    assert pruning["after"]["params"] < 0.35 * pruning["before"]["params"]
    assert pruning["after"]["macs"] < 0.5 * pruning["before"]["macs"]
    assert pruning["kept_whole"] == ["dense_1"]          # the classifier's outputs are the model's outputs
    (art,) = report["artifacts"]
    dense_fp32_bytes = report["source"]["size_bytes"]    # the dense model's float32 weights
    assert art["status"] == "ok" and art["size_bytes"] <= 0.15 * dense_fp32_bytes, art["size_bytes"]
    assert art["accuracy_drop"] <= 2.0


def test_keras_unstructured_per_layer_mask_holds_through_fine_tuning(cache_dir: Path, tmp_path: Path) -> None:
    code, report, err = build_json(tmp_path, ["tflite:fp32"], "--example", "keras-digits", "--prune", "0.5",
                                   "--prune-scope", "layer", "--fine-tune", KERAS_FINE_TUNE)
    assert code == 0, err[-2000:]
    pruning = report["source"]["pruning"]
    assert pruning["kind"] == "unstructured" and pruning["scope"] == "layer"
    assert 0.49 <= pruning["after"]["sparsity"] <= 0.51       # half of every kernel, so half of all of them
    assert pruning["after"]["params"] == pruning["before"]["params"]
    (art,) = report["artifacts"]
    assert art["status"] == "ok" and art["size_compressed_bytes"] < 0.8 * art["size_bytes"]
