"""Quantization modes beyond static int8: ExecuTorch 8da4w (int4 weights, int8 dynamic activations) through
torchao, validated in the ExecuTorch runtime; a mode a format cannot do is refused by name before any work."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run_cli

pytestmark = pytest.mark.slow


def test_pte_int4_8da4w_validates_and_shrinks_the_linears(android_build: dict, tmp_path: Path) -> None:
    dense = {(a["format"], a["precision"]): a for a in android_build["report"]["artifacts"]}[("pte", "fp32")]
    (tmp_path / "edgepipe.toml").write_text('[targets.android]\nformats = ["pte:int4"]\n')
    proc = run_cli("build", "--out", str(tmp_path / "out"), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (art,) = json.loads(proc.stdout[proc.stdout.index("{"):])["artifacts"]
    quantization = art["export"]["metadata"]["quantization"]
    assert quantization["layers_quantized"] == ["classifier.1", "classifier.3"]
    assert art["status"] == "ok" and art["agreement"] >= 0.95 and art["accuracy_drop"] <= 2.0
    # the two Linear layers hold 33,482 of 38,282 params: int4 packs them to about 1/8 of their fp32 bytes
    assert art["size_bytes"] < 0.35 * dense["size_bytes"]


def test_a_mode_the_format_cannot_do_is_refused_up_front(tmp_path: Path) -> None:
    (tmp_path / "edgepipe.toml").write_text('[targets.android]\nformats = ["pte:int8-weight"]\n')
    proc = run_cli("build", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "'pte:int8-weight' is not offered: the pte exporters support 8da4w, fp32, int4, int8" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_calibration_count_and_method_reach_the_quantizer(android_build: dict, tmp_path: Path) -> None:
    (tmp_path / "edgepipe.toml").write_text('[quantization]\ncalibration-samples = 32\n'
                                            'calibration-method = "percentile"\n'
                                            '[targets.linux-arm64]\nformats = ["onnx:int8"]\n')
    proc = run_cli("build", "--target", "linux-arm64", "--out", str(tmp_path / "out"), "--json", cwd=tmp_path)
    assert proc.returncode in (0, 4), proc.stderr[-2000:]
    (art,) = json.loads(proc.stdout[proc.stdout.index("{"):])["artifacts"]
    quantization = art["export"]["metadata"]["quantization"]
    assert quantization["calibration_samples"] == 32 and quantization["calibration_method"] == "percentile"
    # percentile ranges from 32 samples clip this model's logits: validation decides, the test only asks that
    # the result is either validated or refused for disagreeing, never shipped unchecked
    assert art["status"] == "ok" or art["error"]["type"] == "ValidationMismatch"


def test_a_calibration_method_the_quantizer_lacks_is_refused(android_build: dict, tmp_path: Path) -> None:
    (tmp_path / "edgepipe.toml").write_text('[quantization]\ncalibration-method = "entropy"\n'
                                            '[targets.android]\nformats = ["pte:int8"]\n')
    proc = run_cli("build", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2
    assert ("calibration-method 'entropy' is not offered for pte:int8 (its quantizer xnnpack-int8 offers: histogram, "
            "minmax, percentile)") in proc.stderr


def test_pt2e_min_max_calibration_replaces_the_histogram_observer(android_build: dict, tmp_path: Path) -> None:
    default = {(a["format"], a["precision"]): a for a in android_build["report"]["artifacts"]}[("pte", "int8")]
    assert default["export"]["metadata"]["quantization"]["calibration_method"] == "histogram"
    (tmp_path / "edgepipe.toml").write_text('[quantization]\ncalibration-method = "minmax"\nsensitivity = false\n'
                                            '[targets.android]\nformats = ["pte:int8"]\n')
    proc = run_cli("build", "--out", str(tmp_path / "out"), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (art,) = json.loads(proc.stdout[proc.stdout.index("{"):])["artifacts"]
    assert art["export"]["metadata"]["quantization"]["calibration_method"] == "minmax"
    assert art["status"] == "ok" and art["sha256"] != default["sha256"]   # other ranges, other int8 bytes
    # no budget: the default (on-failure) ranks nothing; false is the deprecated alias of "never"
    assert default["sensitivity"]["status"] == "not run (on-failure: no budget missed)"
    assert art["sensitivity"]["status"] == "not run (never)"


def _ops_and_weight_types(path: str) -> tuple[list[str], set[str]]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    ops = [op["op_name"] for op in interpreter._get_ops_details()]
    return ops, {d["dtype"].__name__ for d in interpreter.get_tensor_details()}


@pytest.mark.parametrize("example", ["torch-digits", "keras-digits"])
def test_litert_weight_only_and_dynamic_int8_from_either_framework(android_build: dict, tmp_path: Path,
                                                                    example: str) -> None:
    dense = {(a["format"], a["precision"]): a for a in android_build["report"]["artifacts"]}[("tflite", "fp32")]
    (tmp_path / "edgepipe.toml").write_text('[targets.android]\n'
                                            'formats = ["tflite:int8-weight", "tflite:int8-dynamic"]\n')
    proc = run_cli("build", "--example", example, "--out", str(tmp_path / "out"), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]   # Keras int8-dynamic: TFLiteConverter's own dynamic range
    arts = {a["precision"]: a for a in json.loads(proc.stdout[proc.stdout.index("{"):])["artifacts"]}
    for precision, art in arts.items():
        assert art["status"] == "ok" and art["agreement"] >= 0.95, (precision, art.get("error"))
        assert art["size_bytes"] < 0.35 * dense["size_bytes"]
    ops, dtypes = _ops_and_weight_types(str(tmp_path / "out" / "android" / arts["int8-weight"]["path"]))
    assert "DEQUANTIZE" in ops and "int8" in dtypes   # int8 weights, dequantized in the graph for float kernels
    assert arts["int8-weight"]["export"]["metadata"]["quantization"]["tool"].startswith("ai-edge-quantizer")
