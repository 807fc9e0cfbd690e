"""Models users really bring: several named inputs of several dtypes, several outputs, each validated.

The models (tests/multi_io_models.py) are built and trained here; nothing is downloaded."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from .conftest import one_torch_thread, run_cli

MODELS = Path(__file__).with_name("multi_io_models.py")
DATA = """
calibration = "multi_io:{calibration}"
evaluate = "multi_io:{evaluate}"
"""


def project(tmp_path: Path, cache_dir: Path, toml: str) -> Path:
    shutil.copyfile(MODELS, tmp_path / "multi_io.py")
    (tmp_path / "edgepipe.toml").write_text(toml)
    return tmp_path


def build(folder: Path, *args: str) -> tuple[int, dict]:
    proc = run_cli("build", "--out", str(folder / "out"), *args, cwd=folder)
    target = args[args.index("--target") + 1] if "--target" in args else "android"
    report_file = folder / "out" / target / "report.json"
    assert report_file.is_file(), proc.stdout + proc.stderr
    return proc.returncode, json.loads(report_file.read_text())


def faithful(output: dict, floor_db: float) -> bool:
    """SQNR above the floor, or no error at all (SQNR undefined, max |diff| 0)."""
    return output["max_abs_diff"] == 0.0 if output["sqnr_db"] is None else output["sqnr_db"] > floor_db


def by_output(artifact: dict) -> dict[str, dict]:
    return {o["name"]: o for o in artifact["validation"]["outputs"]}


def train_and_save(folder: Path, trainer: str, name: str) -> None:
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("multi_io_for_training", folder / "multi_io.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with one_torch_thread():
        torch.save(getattr(module, trainer)().state_dict(), folder / name)


@pytest.mark.slow
def test_text_encoder_with_token_ids_and_mask_and_two_dict_outputs(tmp_path: Path, cache_dir: Path) -> None:
    folder = project(tmp_path, cache_dir, """
model = "multi_io:make_encoder"
weights = "encoder.pt"
example-inputs = "multi_io:text_example"
""" + DATA.format(calibration="text_calibration", evaluate="text_evaluate") + """
[targets.android]
formats = ["onnx:fp32", "pte:fp32", "tflite:fp32", "onnx:int8", "pte:int8", "tflite:int8"]
""")
    train_and_save(folder, "train_encoder", "encoder.pt")
    code, report = build(folder, "--target", "android")
    assert code == 0, [a.get("error") for a in report["artifacts"]]
    assert report["source"]["inputs"] == [{"name": "input_ids", "shape": [1, 12], "dtype": "int64"},
                                          {"name": "attention_mask", "shape": [1, 12], "dtype": "int64"}]
    assert [o["name"] for o in report["source"]["outputs"]] == ["pooled", "token_logits"]
    assert report["source"]["metric_output"] == "pooled" and report["source"]["accuracy"] > 0.9
    for artifact in report["artifacts"]:
        outputs = by_output(artifact)
        assert set(outputs) == {"pooled", "token_logits"} and all(o["passed"] for o in outputs.values())
        assert outputs["token_logits"]["shape"] == [12, 40] and "agreement" not in outputs["token_logits"]
        floor = 60 if artifact["precision"] == "fp32" else 10
        assert all(faithful(o, floor) for o in outputs.values()), (artifact["format"], outputs)
        assert artifact["validation"]["metric_drop_pts"] <= 2.0
    assert any("demo apps feed one float32 input" in w and "input_ids [1, 12] int64" in w for w in report["warnings"])
    markdown = (folder / "out" / "android" / "report.md").read_text()
    assert "| onnx:int8 | token_logits | [12, 40] |" in markdown


@pytest.mark.slow
def test_two_head_cnn_android_build_validates_both_heads(tmp_path: Path, cache_dir: Path) -> None:
    folder = project(tmp_path, cache_dir, """
model = "multi_io:make_two_head"
weights = "two_head.pt"
example-inputs = [1, 1, 8, 8]
""" + DATA.format(calibration="digits_calibration", evaluate="digits_evaluate"))
    train_and_save(folder, "train_two_head", "two_head.pt")
    code, report = build(folder, "--target", "android")
    assert code == 0, [a.get("error") for a in report["artifacts"]]
    assert [o["name"] for o in report["source"]["outputs"]] == ["output_0", "output_1"]
    assert {(a["format"], a["precision"]) for a in report["artifacts"]} == {
        ("tflite", "fp32"), ("tflite", "int8"), ("pte", "fp32"), ("pte", "int8")}
    for artifact in report["artifacts"]:
        logits, box = by_output(artifact)["output_0"], by_output(artifact)["output_1"]
        assert logits["decides"] and not box["decides"] and box["shape"] == [4]
        assert box["passed"] and faithful(box, 15) and logits["agreement"] > 0.95


@pytest.mark.slow
def test_recurrent_step_exports_and_validates_both_outputs(tmp_path: Path, cache_dir: Path) -> None:
    folder = project(tmp_path, cache_dir, """
model = "multi_io:make_recurrent"
example-inputs = { x = { shape = [1, 16] }, h = { shape = [1, 24], dtype = "float32" } }
evaluate = "multi_io:recurrent_evaluate"
metric = "multi_io:hidden_state_metric"
metric-output = "output_1"

[targets.android]
formats = ["onnx:fp32", "pte:fp32", "tflite:fp32"]
""")
    with open(folder / "multi_io.py", "a") as fh:
        fh.write("\n\ndef hidden_state_metric(outputs, labels):\n    return float((abs(outputs) < 1.0).mean())\n")
    code, report = build(folder, "--target", "android")
    assert code == 0, [a.get("error") for a in report["artifacts"]]
    assert [i["name"] for i in report["source"]["inputs"]] == ["x", "h"]
    assert report["source"]["metric"] == "multi_io:hidden_state_metric" and report["source"]["accuracy"] == 1.0
    for artifact in report["artifacts"]:
        outputs = by_output(artifact)
        assert set(outputs) == {"output_0", "output_1"} and all(faithful(o, 60) for o in outputs.values())
        assert artifact["validation"]["metric"] == "multi_io:hidden_state_metric"
        assert artifact["validation"]["metric_output"] == "output_1"


@pytest.mark.slow
def test_keras_model_with_two_named_inputs_to_tflite_and_tfjs(tmp_path: Path, cache_dir: Path) -> None:
    folder = project(tmp_path, cache_dir, """
model = "multi_io:keras_two_inputs"
example-inputs = "multi_io:keras_example"
calibration = "multi_io:keras_calibration"

[targets.android]
formats = ["tflite:fp32", "tflite:int8"]

[targets.web]
formats = ["tfjs:fp32"]
""")
    for target in ("android", "web"):
        code, report = build(folder, "--target", target)
        assert code == 0, [a.get("error") for a in report["artifacts"]]
        assert [i["name"] for i in report["source"]["inputs"]] == ["image", "side"]
        for artifact in report["artifacts"]:
            (output,) = artifact["validation"]["outputs"]
            assert output["passed"] and faithful(output, 60 if artifact["precision"] == "fp32" else 10)
        assert any("only 1 evaluation samples" in w for w in report["warnings"])


@pytest.mark.slow
def test_int8_classifier_with_logits_spanning_hundreds_passes(tmp_path: Path, cache_dir: Path) -> None:
    """A good int8 artifact must not be refused because logits nobody reads carry large absolute errors."""
    folder = project(tmp_path, cache_dir, """
model = "multi_io:make_wide_logits"
example-inputs = [1, 1, 8, 8]
calibration = "multi_io:digits_example_calibration"
evaluate = "multi_io:digits_example_evaluate"

[targets.android]
formats = ["tflite:int8", "pte:int8"]
""")
    code, report = build(folder, "--target", "android")
    assert code == 0, [a.get("error") for a in report["artifacts"]]
    for artifact in report["artifacts"]:
        (output,) = artifact["validation"]["outputs"]
        assert output["max_abs_diff"] > 5.0, output    # large in absolute terms ...
        assert output["agreement"] >= 0.98 and artifact["accuracy_drop"] <= 1.0   # ... and a good classifier


def write_recurrent_onnx(folder: Path) -> Path:
    import torch

    import tests.multi_io_models as models

    path = folder / "step.onnx"
    torch.onnx.export(models.make_recurrent(), (torch.zeros(1, 16), torch.zeros(1, 24)), str(path), dynamo=True,
                      input_names=["x", "h"], output_names=["y", "h_next"]).save(str(path))
    return path


@pytest.fixture(scope="module")
def recurrent_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_recurrent_onnx(tmp_path_factory.mktemp("onnx"))


@pytest.mark.slow
def test_profile_multi_input_onnx_with_named_npz(recurrent_onnx: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "inputs.npz", h=rng.standard_normal((4, 24)).astype(np.float32),
             x=rng.standard_normal((4, 16)).astype(np.float32))
    proc = run_cli("profile", str(recurrent_onnx), "--inputs", str(tmp_path / "inputs.npz"), "--runs", "5",
                   "--out", str(tmp_path / "out"), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (artifact,) = json.loads(proc.stdout[proc.stdout.index("{"):])["artifacts"]
    assert [i["name"] for i in artifact["inputs"]] == ["x", "h"]
    assert [(o["name"], o["shape"]) for o in artifact["outputs"]] == [("y", [1, 6]), ("h_next", [1, 24])]


@pytest.mark.parametrize("arrays,message", [
    ({"x": ((4, 16), "float32")}, "missing input(s) h"),
    ({"x": ((4, 16), "float32"), "h": ((4, 24), "int32")}, "input 'h' has dtype int32, the artifact expects float32"),
    ({"x": ((4, 16), "float32"), "h": ((4, 24), "float32"), "extra": ((4, 2), "float32")},
     "array(s) extra match no input"),
    ({"arr_0": ((4, 16), "float32"), "arr_1": ((4, 9), "float32")}, "input 'h' has shape [4, 9]"),
], ids=["missing", "dtype", "extra", "shape-by-order"])
def test_profile_names_the_missing_extra_or_wrong_input(recurrent_onnx: Path, tmp_path: Path, arrays: dict,
                                                        message: str) -> None:
    np.savez(tmp_path / "bad.npz", **{k: np.zeros(shape, dtype) for k, (shape, dtype) in arrays.items()})
    proc = run_cli("profile", str(recurrent_onnx), "--inputs", str(tmp_path / "bad.npz"), "--out",
                   str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
