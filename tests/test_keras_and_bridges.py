"""Keras / TensorFlow sources, every TFLiteConverter mode, and the cross-framework bridges
(Keras -> ONNX -> torch -> .pte, ONNX file -> torch), each artifact validated against its original source."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from .conftest import run_cli

pytestmark = pytest.mark.slow


def build_json(project: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict]:
    proc = run_cli("build", "--out", str(project / "out"), "--json", *args, cwd=project, env=env)
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


def _matmul_model(path: Path) -> None:
    """A one-layer ONNX model every ONNX runtime runs (opset 17)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="dense")], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_onnx_op_the_bridge_cannot_carry_is_named_with_its_layer(cache_dir: Path, tmp_path: Path) -> None:
    _shrink_model(tmp_path / "shrinky.onnx")
    (tmp_path / "edgepipe.toml").write_text('model = "shrinky.onnx"\n'
                                            '[targets.android]\nformats = ["pte:fp32", "onnx:fp32"]\n')
    code, report = build_json(tmp_path)
    assert code == 4
    pte, onnx_art = report["artifacts"]
    assert pte["status"] == "failed" and pte["error"]["type"] == "Unsupported"
    assert "Shrink" in pte["error"]["message"] and "my_shrink_layer" in pte["error"]["message"]
    assert onnx_art["status"] == "ok", "the ONNX file itself still builds"


def _constant_weights_model(path: Path) -> None:
    """A conv net whose weights are Constant nodes, as Paddle exports them (PP-OCR's files), not initializers."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def constant(name: str, shape: tuple[int, ...]) -> onnx.NodeProto:
        value = numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.3, name)
        return helper.make_node("Constant", [], [name], value=value)

    graph = helper.make_graph(
        [constant("conv_w", (8, 3, 3, 3)), constant("conv_b", (8,)), constant("fc_w", (4, 8)), constant("fc_b", (4,)),
         helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"]), helper.make_node("GlobalAveragePool", ["r"], ["p"]),
         helper.make_node("Flatten", ["p"], ["f"]), helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], transB=1)],
        "paddle_style", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_onnx_weights_in_constant_nodes_reach_pte(cache_dir: Path, tmp_path: Path) -> None:
    """onnx2torch reads weights from initializers only: it failed with `KeyError: 'conv_w'`."""
    _constant_weights_model(tmp_path / "paddle_style.onnx")
    (tmp_path / "edgepipe.toml").write_text('model = "paddle_style.onnx"\n[targets.android]\nformats = ["pte:fp32"]\n')
    code, report = build_json(tmp_path)
    assert code == 0, report
    (pte,) = report["artifacts"]
    assert pte["status"] == "ok" and pte["validation"]["outputs"][0]["sqnr_db"] > 80


def _dynamic_shape_model(path: Path) -> None:
    """A conv net whose input has symbolic batch, height and width, as detectors are exported."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.3, name)
               for name, shape in (("w", (6, 3, 3, 3)), ("b", (6,)), ("fc", (2, 6)))]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("GlobalAveragePool", ["r"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
         helper.make_node("Transpose", ["fc"], ["fc_t"]), helper.make_node("MatMul", ["f", "fc_t"], ["y"])],
        "dynamic", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_onnx_with_dynamic_input_dims_reaches_tflite_at_the_example_shape(cache_dir: Path, tmp_path: Path) -> None:
    """onnx2tf left [None, None, None, 3]; the example's shape now fixes the dynamic dimensions. The bridge's
    SavedModel and onnx2tf's own files are temporary: the build leaves nothing in the temporary folder."""
    _dynamic_shape_model(tmp_path / "dynamic.onnx")
    (tmp_path / "edgepipe.toml").write_text(
        'model = "dynamic.onnx"\nexample-inputs = { x = { shape = [1, 3, 20, 28], dtype = "float32" } }\n'
        '[targets.android]\nformats = ["tflite:fp32"]\n')
    temp = tmp_path / "tmp"
    temp.mkdir()
    code, report = build_json(tmp_path, env={"TMPDIR": str(temp)})
    assert code == 0, report
    assert sorted(p.name for p in temp.iterdir()) == []
    (tflite,) = report["artifacts"]
    assert tflite["status"] == "ok" and tflite["validation"]["outputs"][0]["sqnr_db"] > 60


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
    assert (code == 2 and "Lambda layer" in payload["error"]["message"]
            and "keras-safe-mode" in payload["error"]["message"])
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


def _keras_small_h5(path: Path, with_lambda: bool = False) -> None:
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, activation="relu")(inputs))
    outputs = keras.layers.Dense(5)(hidden)
    if with_lambda:
        outputs = keras.layers.Lambda(lambda t: t * 2.0)(outputs)
    keras.Model(inputs, outputs).save(path)


def test_keras_h5_file_is_a_source_and_lambda_is_refused(cache_dir: Path, tmp_path: Path) -> None:
    _keras_small_h5(tmp_path / "m.h5")
    _keras_small_h5(tmp_path / "lambda.h5", with_lambda=True)
    toml = 'model = "{model}"\nexample-inputs = [1, 8, 8, 1]\n[targets.android]\nformats = ["tflite:fp32"]\n'
    (tmp_path / "edgepipe.toml").write_text(toml.format(model="m.h5"))
    code, report = build_json(tmp_path)
    assert code == 0, report
    assert report["source"]["framework"] == "tensorflow" and report["source"]["provenance"]["path"].endswith("m.h5")
    (art,) = report["artifacts"]
    assert art["status"] == "ok" and art["validation"]["passed"] and art["max_abs_diff"] < 1e-4
    (tmp_path / "edgepipe.toml").write_text(toml.format(model="lambda.h5"))
    code, payload = build_json(tmp_path)
    assert (code == 2 and "Lambda layer" in payload["error"]["message"]
            and "keras-safe-mode" in payload["error"]["message"])


MOBILENET_TOML = '''model = "mobilenets:{prefix}_mobilenet_v2"
example-inputs = "mobilenets:{prefix}_example"
calibration = "mobilenets:{prefix}_calibration"
evaluate = "mobilenets:{prefix}_evaluate"
[profile]
warmup = 0
runs = 2
threads = [1]
[quantization]
sensitivity = false
[targets.{target}]
formats = {formats}
'''


def _mobilenet_build(project: Path, prefix: str, target: str, formats: list[str]) -> tuple[int, dict]:
    """A MobileNetV2 from tests/mobilenets.py (random weights, fixed seeds, 32 evaluation images)."""
    (project / "mobilenets.py").write_text((Path(__file__).parent / "mobilenets.py").read_text())
    (project / "edgepipe.toml").write_text(MOBILENET_TOML.format(prefix=prefix, target=target,
                                                                 formats=json.dumps(formats)))
    return build_json(project, "--target", target)


def test_mobilenets_give_input_dependent_outputs() -> None:
    """Top-1 agreement only means something if the source's arg-max changes with the input."""
    import torch

    from . import mobilenets

    x, _ = mobilenets.torch_evaluate()[0]
    with torch.no_grad():
        torch_out = mobilenets.torch_mobilenet_v2()(torch.from_numpy(x)).numpy()
    x, _ = mobilenets.keras_evaluate()[0]
    keras_out = np.asarray(mobilenets.keras_mobilenet_v2()(x, training=False))
    for out in (torch_out, keras_out):
        assert len(set(out.argmax(axis=1).tolist())) >= 6, "predictions spread over the classes"


def faithful(validation: dict, floor_db: float) -> bool:
    """Every output's SQNR above the floor (or no error at all: SQNR undefined, max |diff| 0)."""
    if validation["min_sqnr_db"] is None:
        return validation["max_abs_diff"] == 0.0
    return validation["min_sqnr_db"] > floor_db


def test_keras_mobilenet_v2_reaches_pte_through_the_bridge(cache_dir: Path, tmp_path: Path) -> None:
    """keras.applications.MobileNetV2 (ZeroPadding2D before strided depthwise convs, unfolded depthwise BatchNorm
    in the tf2onnx graph) -> tf2onnx -> onnx2torch -> fixed-shape rewrite -> torch.export -> XNNPACK."""
    code, report = _mobilenet_build(tmp_path, "keras", "android", ["pte:fp32", "pte:int8"])
    arts = {a["precision"]: a for a in report["artifacts"]}
    fp32, int8 = arts["fp32"], arts["int8"]
    assert report["source"]["framework"] == "tensorflow" and report["source"]["eval_samples"] == 32
    assert fp32["status"] == "ok", fp32["error"]
    assert fp32["export"]["bridge"] == "tf-to-torch" and fp32["agreement"] == 1.0
    assert faithful(fp32["validation"], 60)
    assert fp32["export"]["metadata"]["non_delegated_ops"].keys() <= {"getitem"}, "the whole graph is delegated"
    # int8 is exported and validated; a random-weight MobileNetV2 is chaotic enough that int8 rounding grows
    # block by block to the size of the logits' input-dependent part (the TFLiteConverter's own int8 of this model
    # agrees no better), so the validation verdict is checked to be the validation's, not an export failure
    assert int8["validation"] is not None and int8["agreement"] is not None and int8["max_abs_diff"] is not None
    assert int8["size_bytes"] < 0.4 * fp32["size_bytes"]
    error = int8["error"] or {}
    assert int8["status"] == "ok" or (error["stage"], error["type"]) == ("validate", "ValidationMismatch"), error
    assert code == (0 if int8["status"] == "ok" else 4)


def test_torch_mobilenet_v2_reaches_tflite_and_tfjs(cache_dir: Path, tmp_path: Path) -> None:
    """The same structure in PyTorch: litert-torch straight to .tflite, and ONNX -> onnx2tf -> TF.js."""
    code, report = _mobilenet_build(tmp_path, "torch", "web", ["tflite:fp32", "tfjs:fp32"])
    assert code == 0, report
    arts = {a["format"]: a for a in report["artifacts"]}
    assert arts["tflite"]["export"]["bridge"] is None and arts["tfjs"]["export"]["bridge"] == "torch-to-tf"
    for art in arts.values():
        assert art["status"] == "ok" and art["agreement"] == 1.0 and faithful(art["validation"], 60)


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_constant_pads_and_conv_affine_are_rewritten_for_export(mode: str) -> None:
    """Pad (opset >= 11, pads as a constant tensor) -> Conv -> per-channel Mul and Add: onnx2torch's version reads
    the pads at run time (torch.export refuses it); the rewrite pads with fixed sizes and folds Mul/Add into the
    conv."""
    import onnxruntime
    import torch
    from onnx import TensorProto, helper, numpy_helper

    from targets.bridges.onnx_graph_fixes import fix_for_export
    from targets.bridges.tf_to_torch import import_onnx2torch

    rng = np.random.default_rng(0)
    consts = {"pads": np.array([0, 0, 0, 1, 0, 0, 1, 2], np.int64),
              "w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
              "scale": rng.uniform(0.5, 2.0, (1, 4, 1, 1)).astype(np.float32),
              "shift": rng.standard_normal((1, 4, 1, 1)).astype(np.float32)}
    graph = helper.make_graph(
        [helper.make_node("Pad", ["x", "pads"], ["p"], mode=mode), helper.make_node("Conv", ["p", "w"], ["c"]),
         helper.make_node("Mul", ["c", "scale"], ["m"]), helper.make_node("Add", ["m", "shift"], ["y"])],
        "padded", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in consts.items()])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    expected = onnxruntime.InferenceSession(proto.SerializeToString()).run(None, {"x": x})[0]

    module = fix_for_export(import_onnx2torch().convert(proto).eval(), torch.from_numpy(x))
    kinds = {type(m).__name__ for m in module.modules()}
    assert "OnnxPadDynamic" not in kinds and "OnnxBinaryMathOperation" not in kinds, kinds
    program = torch.export.export(module, (torch.from_numpy(x),))
    np.testing.assert_allclose(program.module()(torch.from_numpy(x)).detach().numpy(), expected, rtol=1e-5, atol=1e-5)


def test_torchvision_stand_ins_do_not_outlive_the_onnx2torch_import() -> None:
    """Left in sys.modules, the stand-in (no __spec__) made every later `find_spec("torchvision")` in the process
    raise ValueError, and with it `transformers` (found when the language-model tests ran after a bridge test)."""
    import importlib.util
    import sys

    from edge_pipeline.errors import Unsupported
    from targets.bridges.tf_to_torch import import_onnx2torch

    onnx2torch = import_onnx2torch()
    import_onnx2torch()                                   # a second call is as clean as the first
    module = sys.modules.get("torchvision")
    assert module is None or module.__spec__ is not None
    importlib.util.find_spec("torchvision")               # raised "torchvision.__spec__ is None"
    from onnx2torch.node_converters import nms

    if nms.torchvision.__spec__ is None:                  # the stand-in: NMS is still refused by name
        with pytest.raises(Unsupported, match="needs torchvision"):
            nms.torchvision.ops.nms()
    assert onnx2torch.convert is not None
