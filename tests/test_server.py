"""The server target, built once on the digits example: TF Serving's model layout (from PyTorch through the ONNX ->
TensorFlow bridge, and from a two-input, two-output Keras model) loaded back the way TF Serving loads it, and the
TorchServe archive and Ray Serve application, each validated through its real server over HTTP and load-tested.
The servers themselves, started from the bundle, are in test_server_live.py."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from .conftest import run_cli

MODELS = Path(__file__).with_name("multi_io_models.py")


def signature(version_dir: Path) -> tuple[dict, dict]:
    import tensorflow as tf

    function = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    declared = function.structured_input_signature[1].items(), function.structured_outputs.items()
    inputs, outputs = ({name: (spec.dtype.name, spec.shape.as_list()) for name, spec in specs} for specs in declared)
    return inputs, outputs


def warmup_requests(version_dir: Path) -> list:
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    records = tf.data.TFRecordDataset(str(version_dir / "assets.extra" / "tf_serving_warmup_requests"))
    return [prediction_log_pb2.PredictionLog.FromString(r.numpy()).predict_log.request for r in records]


def test_server_build_validates_every_server_format(digits_server: dict) -> None:
    report = digits_server["report"]
    assert report["passed"] and report["target"] == "server"
    by_label = {f"{a['format']}:{a['precision']}": a for a in report["artifacts"]}
    assert set(by_label) == {"tfserving:fp32", "torchserve:fp32", "rayserve:fp32"}
    for label in ("torchserve:fp32", "rayserve:fp32"):     # validated over each server's HTTP API
        (output,) = by_label[label]["validation"]["outputs"]
        assert output["name"] == "output" and output["passed"] and output["agreement"] == 1.0
        assert output["sqnr_db"] is None or output["sqnr_db"] > 60
        assert "HTTP request on 127.0.0.1" in by_label[label]["runtime"]
    tfserving = by_label["tfserving:fp32"]
    assert tfserving["status"] == "ok" and tfserving["runtime"] == "TensorFlow SavedModel serving signature"
    (output,) = tfserving["validation"]["outputs"]
    assert output["name"] == "output" and output["sqnr_db"] > 60 and output["agreement"] == 1.0
    assert tfserving["export"]["route"][0]["tool"] == "torch-to-tf"    # PyTorch reaches TensorFlow by the bridge
    assert "server_load" not in tfserving     # no TF Serving binary here: nothing was served, and it says so
    assert "cannot be installed here" in tfserving["export"]["metadata"]["not_exercised"]
    assert "tfserving:fp32 was not served" in (digits_server["out"] / "report.md").read_text()


def test_each_served_artifact_is_load_tested_and_its_counts_add_up(digits_server: dict) -> None:
    served = {a["format"]: a["server_load"] for a in digits_server["report"]["artifacts"] if "server_load" in a}
    assert set(served) == {"torchserve", "rayserve"}
    for server, load in served.items():
        assert [level["concurrency"] for level in load["levels"]] == [1, 8, 32]
        for level in load["levels"]:
            assert level["errors"] == 0 and 0 < level["requests"] <= 200, (server, level)
            assert level["answered"] + level["errors"] == level["requests"]
            # every answered request is counted once: throughput x wall time = requests (to rounding)
            assert abs(level["throughput_rps"] * level["seconds"] - level["requests"]) <= 1.0 + 0.01 * level["requests"]
            assert 0 < level["p50_ms"] <= level["p90_ms"] <= level["p99_ms"]
        assert load["peak_memory_mb"] > 50 and "on 127.0.0.1: clients and server on this" in load["measured_on"]
    markdown = (digits_server["out"] / "report.md").read_text()
    assert "## Server load test" in markdown and "| torchserve:fp32 | 32 |" in markdown


def test_server_budgets_hold_served_artifacts_and_skip_the_others(digits_server: dict, tmp_path: Path) -> None:
    out = digits_server["out"].parent
    passing = run_cli("gate", str(digits_server["out"] / "report.json"), "--budget", "max-p99-ms=60000",
                      "--budget", "min-throughput-rps=0.5", "--json", cwd=tmp_path)
    assert passing.returncode == 0, passing.stdout + passing.stderr
    checks = json.loads(passing.stdout)["checks"]
    assert {c["artifact"] for c in checks if c["kind"] == "skipped"} == {"tfserving:fp32"}
    failing = run_cli("gate", str(digits_server["out"] / "report.json"), "--budget", "min-throughput-rps=1000000",
                      cwd=tmp_path)
    assert failing.returncode == 1 and "server_throughput_rps" in failing.stdout + failing.stderr
    assert out.is_dir()


def test_the_layout_is_what_tf_serving_loads(digits_server: dict) -> None:
    folder = digits_server["out"] / "model-fp32-tfserving"
    version = folder / "model" / "1"
    assert [p.name for p in folder.iterdir()] == ["model"] and [p.name for p in (folder / "model").iterdir()] == ["1"]
    assert (version / "saved_model.pb").is_file() and (version / "variables" / "variables.index").is_file()
    inputs, outputs = signature(version)
    source = digits_server["report"]["source"]
    assert list(inputs) == [i["name"] for i in source["inputs"]]       # the names a client sends
    assert outputs == {"output": ("float32", [1, 10])}                   # the source's name, not output_0
    (request,) = warmup_requests(version)
    assert request.model_spec.name == "model" and request.model_spec.signature_name == "serving_default"
    assert set(request.inputs) == set(inputs)
    import tensorflow as tf

    warm = tf.make_ndarray(request.inputs[list(inputs)[0]])
    assert warm.dtype == np.float32 and list(warm.shape) == inputs[list(inputs)[0]][1]


def multi_io_server_build(folder: Path, model: str, data: str, formats: list[str]) -> dict:
    """A server build of one of tests/multi_io_models.py's models (`data`: its config keys), which must pass."""
    shutil.copyfile(MODELS, folder / "multi_io.py")
    formats_line = ", ".join(f'"{f}"' for f in formats)
    (folder / "edgepipe.toml").write_text(f'model = "multi_io:{model}"\n{data}\n[targets.server]\n'
                                          f'formats = [{formats_line}]\n')
    proc = run_cli("build", "--target", "server", "--out", str(folder / "out"), cwd=folder)
    report = json.loads((folder / "out" / "server" / "report.json").read_text())
    assert proc.returncode == 0, [a.get("error") for a in report["artifacts"]]
    return report


def test_two_inputs_two_outputs_keep_their_names_and_both_heads_validate(tmp_path: Path) -> None:
    report = multi_io_server_build(tmp_path, "keras_two_heads", 'example-inputs = "multi_io:keras_example"\n'
                                   'calibration = "multi_io:keras_calibration"', ["tfserving:fp32"])
    (artifact,) = report["artifacts"]
    exact = {o["name"]: o["passed"] and (o["max_abs_diff"] == 0.0 if o["sqnr_db"] is None else o["sqnr_db"] > 60)
             for o in artifact["validation"]["outputs"]}
    assert exact == {"logits": True, "embedding": True}
    inputs, outputs = signature(tmp_path / "out" / "server" / "model-fp32-tfserving" / "model" / "1")
    assert inputs == {"image": ("float32", [None, 8, 8, 1]), "side": ("float32", [None, 3])}
    assert outputs == {"logits": ("float32", [None, 10]), "embedding": ("float32", [None, 4])}
    (request,) = warmup_requests(tmp_path / "out" / "server" / "model-fp32-tfserving" / "model" / "1")
    assert set(request.inputs) == {"image", "side"}


def test_same_model_same_layout_bytes(digits_server: dict, tmp_path: Path) -> None:
    """TensorFlow stamps each SavedModel's fingerprint with a random UUID and the archiver stamps the .mar with the
    time; edgepipe derives the one and fixes the other, so a rebuild without the cache writes the same bytes."""
    (tmp_path / "edgepipe.toml").write_text('[targets.server]\nformats = ["tfserving:fp32", "torchserve:fp32"]\n')
    proc = run_cli("build", "--target", "server", "--no-cache", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first = json.loads((digits_server["out"] / "manifest.json").read_text())["artifacts"]
    again = json.loads((tmp_path / "out" / "server" / "manifest.json").read_text())["artifacts"]
    rebuilt = {a["path"]: a["sha256"] for a in again}
    assert len(rebuilt) == 2 and rebuilt == {a["path"]: a["sha256"] for a in first if a["path"] in rebuilt}


def test_a_folder_without_the_version_is_refused_in_one_line(digits_server: dict, tmp_path: Path) -> None:
    broken = tmp_path / "model-fp32-tfserving"
    shutil.copytree(digits_server["out"] / "model-fp32-tfserving", broken)
    (broken / "model" / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    proc = run_cli("profile", str(broken), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "model-fp32-tfserving" in proc.stderr


def test_the_bundle_holds_a_request_that_the_served_signature_answers_like_the_source(digits_server: dict) -> None:
    """The REST body in the bundle, decoded as TF Serving decodes its columnar `inputs` (to the signature's
    dtypes), answers with the source's outputs through the signature and through the Ray app's ONNX model."""
    import onnxruntime as ort
    import tensorflow as tf

    bundle = digits_server["out"] / "bundle"
    assert (digits_server["out"] / "server-server-bundle.zip").is_file()
    config = (bundle / "models.config").read_text()
    assert "name: 'model'" in config and "base_path: '/models/model-fp32-tfserving/model'" in config
    assert (bundle / "models" / "model-fp32-tfserving" / "model" / "1" / "saved_model.pb").is_file()
    request = json.loads((bundle / "predict_request.json").read_text())
    expected = json.loads((bundle / "predict_expected.json").read_text())["outputs"]
    assert request["signature_name"] == "serving_default" and set(expected) == {"output"}
    function = tf.saved_model.load(str(bundle / "models" / "model-fp32-tfserving" / "model" / "1")).signatures[
        "serving_default"]
    declared = function.structured_input_signature[1]
    served = function(**{name: tf.constant(v, dtype=declared[name].dtype) for name, v in request["inputs"].items()})
    np.testing.assert_allclose(served["output"].numpy(), np.asarray(expected["output"]), rtol=1e-4, atol=1e-4)
    session = ort.InferenceSession(str(bundle / "models" / "model-fp32-rayserve" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    feed = {i.name: np.asarray(request["inputs"][i.name], dtype=np.float32) for i in session.get_inputs()}
    (answer,) = session.run(["output"], feed)
    np.testing.assert_allclose(answer, np.asarray(expected["output"]), rtol=1e-4, atol=1e-4)


def test_report_html_draws_the_load_test_with_report_json_numbers(digits_server: dict, tmp_path: Path) -> None:
    from .browser import open_page

    with open_page((digits_server["out"] / "report.html").as_uri(), tmp_path / "profile") as (page, errors):
        page.wait_for_function("document.getElementById('server') && document.getElementById('server').data")
        traces = page.evaluate("() => document.getElementById('server').data"
                               ".map(t => ({x: t.x, y: t.y, meta: t.meta}))")
    assert errors == []
    plotted = {(t["meta"]["artifact"], t["meta"]["figure"]): (t["x"], t["y"]) for t in traces}
    for artifact in digits_server["report"]["artifacts"]:
        load = artifact.get("server_load")
        if load is None:
            continue
        label = f"{artifact['format']}:{artifact['precision']}"
        clients = [level["concurrency"] for level in load["levels"]]
        assert plotted[(label, "p99_ms")] == (clients, [level["p99_ms"] for level in load["levels"]])
        assert plotted[(label, "throughput_rps")] == (clients, [level["throughput_rps"] for level in load["levels"]])


def test_a_keras_source_reaches_every_server_format(tmp_path: Path) -> None:
    """Keras directly to TF Serving's layout, and through the tf-to-torch bridge to TorchServe and tf2onnx to the
    Ray app: each validated against the Keras model through its own server."""
    proc = run_cli("build", "--target", "server", "--example", "keras-digits", "--out", str(tmp_path), cwd=tmp_path)
    report = json.loads((tmp_path / "server" / "report.json").read_text())
    assert proc.returncode == 0, [a.get("error") for a in report["artifacts"]]
    routes = {a["format"]: [step["tool"] for step in a["export"]["route"]] for a in report["artifacts"]}
    assert routes["tfserving"] == ["tf-serving"] and routes["torchserve"][0] == "tf-to-torch"
    for artifact in report["artifacts"]:
        (output,) = artifact["validation"]["outputs"]
        assert output["passed"] and output["agreement"] == 1.0, artifact["format"]
