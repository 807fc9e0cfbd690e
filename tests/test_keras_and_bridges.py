"""Keras / TensorFlow sources, every TFLiteConverter mode, and the cross-framework bridges
(Keras -> ONNX -> torch -> .pte, ONNX file -> torch), each artifact validated against its original source."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from .conftest import run_cli

pytestmark = pytest.mark.slow


def build_json(project: Path, *args: str) -> tuple[int, dict]:
    proc = run_cli("build", "--out", str(project / "out"), "--json", *args, cwd=project)
    return proc.returncode, json.loads(proc.stdout.splitlines()[0] if proc.returncode in (2, 3) else proc.stdout)


@pytest.fixture(scope="session")
def keras_android(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    project = tmp_path_factory.mktemp("keras-android")
    code, report = build_json(project, "--target", "android", "--example", "keras-digits")
    assert code == 0, report
    return report


def test_keras_example_reaches_tflite_and_pte(keras_android: dict) -> None:
    arts = {(a["format"], a["precision"]): a for a in keras_android["artifacts"]}
    assert keras_android["source"]["framework"] == "tensorflow" and keras_android["source"]["accuracy"] > 0.93
    assert set(arts) == {("tflite", "fp32"), ("tflite", "int8"), ("pte", "fp32"), ("pte", "int8")}
    for art in arts.values():
        assert art["status"] == "ok" and art["agreement"] >= 0.98 and art["accuracy_drop"] <= 1.0
    assert arts[("pte", "fp32")]["max_abs_diff"] < 1e-3
    assert arts[("pte", "int8")]["size_bytes"] <= 0.35 * arts[("pte", "fp32")]["size_bytes"], "Dense became Linear"
    assert arts[("pte", "int8")]["export"]["metadata"]["delegated_nodes"] > 10


def test_every_tflite_converter_mode(cache_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "edgepipe.toml").write_text(
        'example = "keras-digits"\n[targets.android]\n'
        'formats = ["tflite:fp32", "tflite:int8-dynamic", "tflite:fp16", "tflite:int8"]\n')
    code, report = build_json(tmp_path)
    assert code == 0, report
    sizes = {a["precision"]: a["size_bytes"] for a in report["artifacts"]}
    assert sizes["int8-dynamic"] < sizes["fp16"] < sizes["fp32"] and sizes["int8"] < sizes["fp16"]
    modes = {a["precision"]: a["export"]["metadata"]["mode"] for a in report["artifacts"]}
    assert modes == {"fp32": "fp32", "int8-dynamic": "dynamic", "fp16": "fp16", "int8": "int8"}
    assert all(a["status"] == "ok" and a["agreement"] >= 0.98 for a in report["artifacts"])


def test_onnx_and_ort_with_ort_quantization(cache_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "edgepipe.toml").write_text(
        '[targets.android]\nformats = ["onnx:fp32", "onnx:int8", "onnx:int8-dynamic", "ort:fp32", "ort:int8"]\n')
    code, report = build_json(tmp_path)
    assert code == 0, report
    arts = {(a["format"], a["precision"]): a for a in report["artifacts"]}
    assert all(a["runtime"] == "ONNX Runtime (CPU)" and a["agreement"] >= 0.98 for a in arts.values())
    assert arts[("onnx", "int8")]["size_bytes"] < 0.4 * arts[("onnx", "fp32")]["size_bytes"]
    assert arts[("ort", "int8")]["export"]["metadata"]["target_platform"] in ("amd64", "arm")
    assert "QDQ" in arts[("onnx", "int8")]["export"]["metadata"]["quantization"]["scheme"]


def _shrink_model(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"], name="dense"),
         helper.make_node("Shrink", ["h"], ["y"], name="my_shrink_layer", lambd=0.5)],
        "shrinky", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_onnx_op_the_bridge_cannot_carry_is_named_with_its_layer(cache_dir: Path, tmp_path: Path) -> None:
    _shrink_model(tmp_path / "shrinky.onnx")
    (tmp_path / "edgepipe.toml").write_text('model = "shrinky.onnx"\n[targets.android]\nformats = ["pte:fp32", "onnx:fp32"]\n')
    code, report = build_json(tmp_path)
    assert code == 4
    pte, onnx_art = report["artifacts"]
    assert pte["status"] == "failed" and pte["error"]["type"] == "Unsupported"
    assert "Shrink" in pte["error"]["message"] and "my_shrink_layer" in pte["error"]["message"]
    assert onnx_art["status"] == "ok", "the ONNX file itself still builds"


def _keras_with_lambda(path: Path) -> None:
    import keras

    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda t: t * 2.0)(keras.layers.Dense(3)(inputs))
    keras.Model(inputs, outputs).save(path)


def test_keras_lambda_is_refused_in_safe_mode_and_allowed_on_opt_in(cache_dir: Path, tmp_path: Path) -> None:
    _keras_with_lambda(tmp_path / "lambda.keras")
    toml = 'model = "lambda.keras"\nexample-inputs = [1, 4]\n{extra}[targets.android]\nformats = ["tflite:fp32"]\n'
    (tmp_path / "edgepipe.toml").write_text(toml.format(extra=""))
    code, payload = build_json(tmp_path)
    assert code == 2 and "Lambda layer" in payload["error"]["message"] and "keras-safe-mode" in payload["error"]["message"]
    assert not (tmp_path / "out" / "android").exists()
    (tmp_path / "edgepipe.toml").write_text(toml.format(extra="keras-safe-mode = false\n"))
    code, report = build_json(tmp_path)
    assert code == 0 and report["artifacts"][0]["max_abs_diff"] < 1e-4


def test_corrupt_keras_file_and_savedmodel_without_signature(cache_dir: Path, tmp_path: Path) -> None:
    import tensorflow as tf

    (tmp_path / "broken.keras").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "edgepipe.toml").write_text('model = "broken.keras"\nexample-inputs = [1, 4]\n')
    code, payload = build_json(tmp_path)
    assert code == 2 and "not a loadable .keras file" in payload["error"]["message"]

    module = tf.Module()
    module.v = tf.Variable(1.0)
    tf.saved_model.save(module, str(tmp_path / "nosig"), signatures={})
    (tmp_path / "edgepipe.toml").write_text('model = "nosig"\nexample-inputs = [1, 4]\n')
    code, payload = build_json(tmp_path)
    assert code == 2 and "no 'serving_default' signature" in payload["error"]["message"]
