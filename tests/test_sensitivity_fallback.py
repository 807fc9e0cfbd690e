"""Per-layer int8 sensitivity in the report, and accuracy-budgeted fallback on deliberately fragile models, for
every int8 backend: ExecuTorch (XNNPACK PT2E), LiteRT from PyTorch (litert-torch PT2E), ONNX Runtime QDQ, and
LiteRT from Keras (TFLiteConverter + QuantizationDebugger). The fragile models are the trained digits CNNs with
one hidden unit scaled x1000 (and the next layer's weights / 1000): the float function is unchanged, but that
activation's outlier ruins per-tensor int8 for its neighbours."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from .conftest import run_cli

pytestmark = pytest.mark.slow

TORCH_MODULE = '''
import torch
from targets.examples.digits_data import load_digits_split
from targets.examples.torch_digits import load


def fragile():
    model = load()[0].module
    with torch.no_grad():   # the most active hidden unit: a dead one would carry no outlier
        hidden = model.classifier[:3](model.features(torch.from_numpy(load_digits_split().calib_x)))
        unit = int(hidden.mean(dim=0).argmax())
        model.classifier[1].weight[unit] *= 1000.0     # relu(1000 z) = 1000 relu(z): same function in float
        model.classifier[1].bias[unit] *= 1000.0
        model.classifier[3].weight[:, unit] /= 1000.0
    return model


def example():
    return load_digits_split().eval_x[:1]


def calibration():
    return [load_digits_split().calib_x]


def evaluate():
    split = load_digits_split()
    return [(split.eval_x, split.eval_y)]
'''
KERAS_MODULE = '''
import numpy as np
from targets.examples.keras_digits import load


def fragile():
    import keras

    keras_model, data = load()
    keras_model = keras_model.module
    hidden, head = keras_model.layers[-2], keras_model.layers[-1]
    activity = keras.Model(keras_model.inputs, hidden.output)(data.calibration.arrays[0])
    unit = int(np.asarray(activity).mean(axis=0).argmax())    # the most active unit: a dead one carries no outlier
    kernel, bias = hidden.get_weights()
    kernel[:, unit] *= 1000.0
    bias[unit] *= 1000.0
    hidden.set_weights([kernel, bias])
    kernel, bias = head.get_weights()
    kernel[unit, :] /= 1000.0
    head.set_weights([kernel, bias])
    return keras_model


def example():
    return load()[1].example.arrays[0]


def calibration():
    return [load()[1].calibration.arrays[0]]


def evaluate():
    data = load()[1]
    return [(data.eval_inputs.arrays[0], data.eval_labels)]
'''
CONFIG = '''model = "fragile:fragile"
example-inputs = "fragile:example"
calibration = "fragile:calibration"
evaluate = "fragile:evaluate"
[targets.android]
formats = {formats}
'''
TORCH_FORMATS = ["pte:int8", "tflite:int8", "onnx:int8"]
TORCH_OUTLIER_LAYERS = {"classifier.1", "classifier.3"}
KERAS_OUTLIER_LAYERS = {"dense", "dense_1"}


def build(tmp_path: Path, module: str, formats: list[str], *flags: str) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "fragile.py").write_text(module)
    (tmp_path / "edgepipe.toml").write_text(CONFIG.format(formats=json.dumps(formats)))
    proc = run_cli("build", "--out", str(tmp_path / "out"), "--json", *flags, cwd=tmp_path)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    report = json.loads(proc.stdout[proc.stdout.index("{"):])
    return {"code": proc.returncode, "artifacts": {f"{a['format']}:{a['precision']}": a for a in report["artifacts"]}}


def check_plain(result: dict, outliers: set[str], layers: set[str], ranking_quantizations: int) -> None:
    """`--sensitivity always`, no budget: ranked in one pass of the shipped model, no fallback."""
    assert result["code"] == 4
    for label, art in result["artifacts"].items():
        assert art["accuracy_drop"] > 1.0, (label, art["accuracy_drop"])      # plain int8 really loses accuracy...
        assert art["error"]["type"] == "ValidationMismatch", label             # ...and validation refuses it
        table = art["sensitivity"]
        assert table["status"] == "ran (always)" and "no re-quantization per layer" in table["method"], (label, table)
        ranking = [row["layer"] for row in table["layers"]]
        assert set(ranking) == layers, (label, ranking)
        assert set(ranking[:2]) == outliers, (label, ranking)                 # the outlier's layers rank first
        assert table["quantizations"] == ranking_quantizations, (label, table)
        assert art["export"]["metadata"]["quantization"]["quantization_passes"] == 1 + ranking_quantizations
        assert art["fallback"] is None


def check_budgeted(result: dict, outliers: set[str], layers: set[str]) -> None:
    """The default mode (on-failure) with a budget the fully quantized model misses: ranks, then falls back,
    verifying k = 1, 2 layers float (growing steps, then bisection), not one re-quantization per layer."""
    assert result["code"] == 0
    for label, art in result["artifacts"].items():
        assert art["status"] == "ok" and art["accuracy_drop"] <= 1.0, (label, art.get("error"))
        table, fallback = art["sensitivity"], art["fallback"]
        assert table["status"] == "ran (on-failure: budget missed)", (label, table)
        assert set(row["layer"] for row in table["layers"][:2]) == outliers, (label, table["layers"])
        assert fallback["met"] and 1 <= len(fallback["kept_float"]) <= 2, (label, fallback)
        assert set(fallback["kept_float"]) <= outliers, (label, fallback)
        assert fallback["steps"][0]["drop_pts"] > 1.0 and fallback["steps"][-1]["drop_pts"] <= 1.0
        assert fallback["steps"][-1]["kept_float"] == fallback["kept_float"]
        assert fallback["verifications"] == len(fallback["steps"]) - 1 <= 2 < len(layers), (label, fallback)
        passes = art["export"]["metadata"]["quantization"]["quantization_passes"]
        assert passes == 1 + table["quantizations"] + fallback["verifications"], (label, passes)


def test_fallback_recovers_a_fragile_torch_model_on_every_int8_backend(cache_dir: Path, tmp_path: Path) -> None:
    layers = {"features.0", "features.2", "classifier.1", "classifier.3"}
    plain = build(tmp_path / "plain", TORCH_MODULE, TORCH_FORMATS, "--sensitivity", "always")
    assert set(plain["artifacts"]) == set(TORCH_FORMATS)
    check_plain(plain, TORCH_OUTLIER_LAYERS, layers, ranking_quantizations=0)
    report_md = (tmp_path / "plain" / "out" / "android" / "report.md").read_text()
    for label in TORCH_FORMATS:
        assert f"### Per-layer int8 sensitivity: {label}" in report_md
    budgeted = build(tmp_path / "budget", TORCH_MODULE, [*TORCH_FORMATS, "tflite:int8-mixed"], "--budget",
                     "max-accuracy-drop=1.0")
    mixed = budgeted["artifacts"].pop("tflite:int8-mixed")
    check_budgeted(budgeted, TORCH_OUTLIER_LAYERS, layers)
    check_int16_then_float(mixed)


def check_int16_then_float(art: dict) -> None:
    """At x1000 int16 activations everywhere still lose over the budget: the mixed search's ladder goes on from
    every region int16 to float regions, and ships the first file that holds."""
    assert art["status"] == "ok" and art["accuracy_drop"] <= 1.0, art.get("error")
    fallback = art["fallback"]
    regions = art["export"]["metadata"]["quantization"]["regions"]
    assert fallback["met"] and fallback["kept_float"] and len(fallback["kept_int16"]) < regions, fallback
    every_int16 = [s for s in fallback["steps"] if len(s["kept_int16"]) == regions and not s["kept_float"]]
    assert every_int16 and every_int16[0]["drop_pts"] > 1.0, fallback["steps"]


def test_default_build_without_a_budget_does_not_rank(cache_dir: Path, tmp_path: Path) -> None:
    """on-failure (the default) quantizes each int8 artifact once and, with no budget to miss, ranks nothing."""
    result = build(tmp_path, TORCH_MODULE, TORCH_FORMATS)
    assert set(result["artifacts"]) == set(TORCH_FORMATS)
    for label, art in result["artifacts"].items():
        assert art["sensitivity"]["status"] == "not run (on-failure: no budget missed)", (label, art["sensitivity"])
        assert art["sensitivity"]["layers"] == [] and art["fallback"] is None, label
        assert art["export"]["metadata"]["quantization"]["quantization_passes"] == 1, label
    report_md = (tmp_path / "out" / "android" / "report.md").read_text()
    assert "Sensitivity not run (on-failure: no budget missed)." in report_md


def test_fallback_recovers_a_fragile_keras_model_in_litert(cache_dir: Path, tmp_path: Path) -> None:
    layers = {"conv2d", "conv2d_1", "dense", "dense_1"}
    plain = build(tmp_path / "plain", KERAS_MODULE, ["tflite:int8"], "--sensitivity", "always")
    check_plain(plain, KERAS_OUTLIER_LAYERS, layers, ranking_quantizations=1)   # QuantizationDebugger calibrates
    budgeted = build(tmp_path / "budget", KERAS_MODULE, ["tflite:int8"], "--budget", "max-accuracy-drop=1.0")
    check_budgeted(budgeted, KERAS_OUTLIER_LAYERS, layers)
    (art,) = budgeted["artifacts"].values()
    assert art["size_bytes"] > plain["artifacts"]["tflite:int8"]["size_bytes"]   # float layers keep float weights


def test_int16_activations_hold_a_milder_outlier_without_float_layers(cache_dir: Path, tmp_path: Path) -> None:
    """Scaled x100 (not x1000) the outlier still costs int8 activations over 1 pt. Under a 1 pt budget, plain
    int8 keeps layers float; 16x8's int16 activations hold it with no float layer; `int8-mixed` holds it with
    int16 activations only where the ranking points (the outlier's tensors), every other tensor int8 and no
    float op, verified on the shipped file. (At x1000 int16 is not enough either: only float fallback is.)"""
    from ai_edge_litert.interpreter import Interpreter

    formats = ["tflite:fp32", "tflite:int8", "tflite:int16x8", "tflite:int8-mixed"]
    result = build(tmp_path, TORCH_MODULE.replace("1000.0", "100.0"), formats, "--budget", "max-accuracy-drop=1.0")
    assert result["code"] == 0, {k: a.get("error") for k, a in result["artifacts"].items()}
    fp32, int8, int16, mixed = (result["artifacts"][f] for f in formats)
    assert int8["fallback"]["steps"][0]["drop_pts"] > 1.0 and int8["fallback"]["kept_float"]
    assert int16["status"] == "ok" and int16["accuracy_drop"] <= 1.0, int16.get("error")
    interpreter = Interpreter(model_path=str(tmp_path / "out" / "android" / int16["path"]))
    assert interpreter.get_input_details()[0]["dtype"].__name__ == "int16"
    assert int16["export"]["metadata"]["quantization"]["tool"].endswith("static_wi8_ai16")
    assert int16["export"]["metadata"]["quantization"]["float_ops"] == {}

    assert mixed["status"] == "ok" and mixed["accuracy_drop"] <= 1.0, mixed.get("error")
    fallback, ranking = mixed["fallback"], [row["layer"] for row in mixed["sensitivity"]["layers"]]
    assert fallback["met"] and fallback["steps"][0]["drop_pts"] > 1.0 and fallback["kept_float"] == []
    kept = fallback["kept_int16"]
    assert 1 <= len(kept) <= 2 < len(ranking) and kept == ranking[:len(kept)], (kept, ranking)
    assert fallback["steps"][-1]["kept_int16"] == kept and fallback["steps"][-1]["drop_pts"] <= 1.0
    shipped = Interpreter(model_path=str(tmp_path / "out" / "android" / mixed["path"]))
    types = [t["dtype"].__name__ for t in shipped.get_tensor_details()]
    assert "int16" in types and types.count("int8") > types.count("int16"), types
    assert mixed["export"]["metadata"]["quantization"]["float_ops"] == {}      # every op here has a 16x8 kernel
    assert fallback["steps"][-1]["accuracy"] == mixed["accuracy"], "the verified candidate is the shipped file"
    report_md = (tmp_path / "out" / "android" / "report.md").read_text()
    assert "regions kept int16: " + ", ".join(kept) in report_md
    every_region_int16_is_the_whole_model_16x8(tmp_path / "out" / "android", fp32["path"], int16["path"])


def every_region_int16_is_the_whole_model_16x8(folder: Path, fp32: str, int16: str) -> None:
    """The mixed search's space ends where 16x8 is: every region promoted gives the 16x8 recipe's outputs."""
    from edge_pipeline.plugins import DataBundle
    from quantization.litert_mixed import LitertMixedInt8, regions_of
    from quantization.litert_recipes import calibrated_ranges, quantized_bytes
    from quantization.tflite_int8_debug import litert_predict
    from targets.examples.digits_data import load_digits_split

    split = load_digits_split()
    data = DataBundle.single("x", split.eval_x[:1], split.calib_x, split.eval_x, split.eval_y)
    mixed, regions = LitertMixedInt8(), regions_of(folder / fp32)
    ranges = calibrated_ranges(folder / fp32, mixed.steps(), data)
    every = quantized_bytes(folder / fp32, mixed.steps() + mixed.int16_steps(frozenset(regions), regions), ranges,
                            "every region int16")
    none = quantized_bytes(folder / fp32, mixed.steps(), ranges, "int8")
    reference = litert_predict((folder / int16).read_bytes(), 1)(data.eval_inputs)
    assert np.array_equal(litert_predict(every, 1)(data.eval_inputs), reference)
    assert not np.array_equal(litert_predict(none, 1)(data.eval_inputs), reference)

