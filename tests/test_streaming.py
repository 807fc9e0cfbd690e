"""Streaming and stateful models (issue 22): scalar inputs, tensors batched along another axis, state carried from
call to call and validated over whole sequences, in every runtime.

The models (tests/streaming_models.py) are built and trained here on generated features; nothing is downloaded.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from .conftest import one_torch_thread, run_cli

MODELS = Path(__file__).with_name("streaming_models.py")
SPOTTER = """
model = "streaming:make_spotter"
weights = "spotter.pt"
example-inputs = "streaming:spotter_example"
batch-dims = {{ state = 1 }}
chunk-duration-ms = 80                 # 8 frames of 10 ms
calibration = "streaming:spotter_calibration"
evaluate = "streaming:spotter_evaluate"

[targets.stream]
extends = "android"
formats = [{formats}]
profile = {{ runs = 20, warmup = 2, threads = [1] }}
"""
ALL_FORMATS = '"pte:fp32", "pte:int8", "tflite:fp32", "tflite:int8", "onnx:fp32", "onnx:int8"'


def project(folder: Path, toml: str) -> Path:
    shutil.copyfile(MODELS, folder / "streaming.py")
    (folder / "edgepipe.toml").write_text(toml)
    return folder


def trained_spotter(folder: Path) -> None:
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("streaming_for_training", folder / "streaming.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with one_torch_thread():       # the same weights, bit for bit
        torch.save(module.train_spotter().state_dict(), folder / "spotter.pt")


def build(folder: Path, target: str = "stream") -> tuple[int, dict, str]:
    proc = run_cli("build", "--target", target, "--out", str(folder / "out"), cwd=folder)
    report_file = folder / "out" / target / "report.json"
    report = json.loads(report_file.read_text()) if report_file.is_file() else {}
    return proc.returncode, report, proc.stdout + proc.stderr


def sequence(artifact: dict) -> dict:
    return artifact["validation"]["sequence"]


def step_figures(artifact: dict) -> dict[str, dict]:
    return {o["name"]: o for o in sequence(artifact)["outputs"]}


@pytest.fixture(scope="module")
def spotter_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The spotter trained once per module: the PyTorch build and the ONNX export both start from these weights."""
    folder = project(tmp_path_factory.mktemp("spotter-weights"), "")
    trained_spotter(folder)
    return folder / "spotter.pt"


@pytest.fixture(scope="module")
def spotter_build(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, spotter_weights: Path) -> dict:
    folder = project(tmp_path_factory.mktemp("spotter"), SPOTTER.format(formats=ALL_FORMATS))
    shutil.copyfile(spotter_weights, folder / "spotter.pt")
    code, report, log = build(folder)
    return {"folder": folder, "code": code, "report": report, "log": log, "cache": cache_dir}


@pytest.mark.slow
def test_keyword_spotter_with_scalar_rate_and_state_passes_over_sequences_in_every_runtime(spotter_build) -> None:
    report = spotter_build["report"]
    assert spotter_build["code"] == 0, spotter_build["log"][-3000:]
    inputs = {i["name"]: i for i in report["source"]["inputs"]}
    assert inputs["sr"]["shape"] == [] and inputs["sr"]["batch_dim"] is None and inputs["sr"]["dtype"] == "int64"
    assert inputs["state"]["shape"] == [1, 1, 32] and inputs["state"]["batch_dim"] == 1
    assert "batch_dim" not in inputs["features"]
    assert len(report["artifacts"]) == 6
    for artifact in report["artifacts"]:
        found = sequence(artifact)
        assert found["steps"] == 50 and found["sequences"] == 4 and found["initial_state"] == "zeros"
        assert found["state"] == ["stateN -> state"] and found["state_from"] == "names"
        assert found["chunk_duration_ms"] == 80
        assert found["real_time_factor"] == pytest.approx(artifact["latency_ms"]["p50"] / 80, rel=1e-4, abs=1e-8)
        figures = step_figures(artifact)
        assert set(figures) == {"logits", "stateN"} and figures["stateN"]["state"]
        assert all(len(o["step_sqnr_db"]) == 50 for o in figures.values())
        floor = 80 if artifact["precision"] == "fp32" else 20
        assert all(o["worst_sqnr_db"] > floor for o in figures.values()), (artifact["format"], figures)
        assert len(figures["logits"]["step_agreement"]) == 50 and figures["logits"]["worst_agreement"] >= 0.75
        # the labels need memory: a keyword is shown once and named by every later chunk
        assert artifact["accuracy"] >= 0.9 and artifact["validation"]["metric_drop_pts"] <= 2.0
    markdown = (spotter_build["folder"] / "out" / "stream" / "report.md").read_text()
    assert "### Over sequences (50 calls each, state stateN -> state from zeros, names)" in markdown
    assert "| pte:int8 | 4 | stateN (state) |" in markdown


@pytest.mark.slow
def test_int8_state_is_calibrated_on_the_values_it_takes(spotter_build) -> None:
    """The user's calibration data holds zeros for the state; the source stage replaces them by the states the
    float model carries, so the int8 state input gets a real range (with zeros it lost 26-60 pt)."""
    from edge_pipeline.datafiles import load_bundle, load_plan

    source = next(p.parent for p in spotter_build["cache"].glob("stages/source/*/reference.npz")
                  if "stateN" in (load_plan(p) or ""))
    calibration = load_bundle(source / "data").calibration
    state = calibration.as_dict()["state"]
    assert calibration.dims == (0, 1, None) and state.shape == (1, 100, 32)
    assert np.all(state[:, 0] == 0) and np.all(state[:, 50] == 0)        # each stream starts from zeros
    assert float(np.abs(state).mean()) > 0.1                              # then carries what the model computed


def tampered(source: Path, dest: Path, how: str) -> Path:
    """The built ONNX artifact with its state path broken on purpose."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(source)
    graph = model.graph
    graph.initializer.extend([numpy_helper.from_array(np.array(0.0, np.float32), "tamper_zero"),
                              numpy_helper.from_array(np.arange(31, -1, -1, dtype=np.int64), "tamper_reversed")])
    if how == "input-ignored":
        for node in graph.node:
            node.input[:] = ["tamper_state" if name == "state" else name for name in node.input]
        graph.node.insert(0, helper.make_node("Mul", ["state", "tamper_zero"], ["tamper_state"]))
    else:
        for node in graph.node:
            node.output[:] = ["tamper_stateN" if name == "stateN" else name for name in node.output]
        graph.node.append(helper.make_node("Mul", ["tamper_stateN", "tamper_zero"], ["stateN"]) if how == "zeroed"
                          else helper.make_node("Gather", ["tamper_stateN", "tamper_reversed"], ["stateN"], axis=2))
    onnx.checker.check_model(model)
    onnx.save(model, dest)
    return dest


@pytest.mark.slow
@pytest.mark.parametrize("how", ["zeroed", "input-ignored", "transposed"])
def test_a_broken_state_path_is_refused_naming_the_steps(spotter_build, tmp_path: Path, how: str) -> None:
    """The same fp32 ONNX file, its state output zeroed, its state input ignored, or its state returned in
    another layout (hidden units reversed): each first call still matches the source (the state starts at
    zeros), only the sequence tells them apart."""
    from edge_pipeline.datafiles import load_plan
    from edge_pipeline.measure import measure_stage
    from edge_pipeline.measure.validate import thresholds_for
    from edge_pipeline.precision import Precision
    from edge_pipeline.records import MeasureJob
    from edge_pipeline.types import ProfileSettings, SourceSpec

    folder = spotter_build["folder"]
    source = next(p.parent for p in spotter_build["cache"].glob("stages/source/*/reference.npz")
                  if "stateN" in (load_plan(p) or ""))
    artifact = tampered(folder / "out" / "stream" / "model-fp32.onnx", tmp_path / f"{how}.onnx", how)
    job = MeasureJob("onnxruntime", artifact, "stream", source / "data", source / "reference.npz",
                     thresholds_for(Precision.parse("fp32")), ProfileSettings(warmup=1, runs=2, threads=(1,)), None,
                     SourceSpec(example=None, model="streaming:make_spotter", base_dir=str(folder)), "classification")
    measured = measure_stage.run(job)
    assert not measured.passed
    message = measured.validation.message
    assert "SQNR falls to" in message and "over steps 39-50 of 50" in message and "diverges" in message, message
    figures = {o.name: o for o in measured.validation.sequence.outputs}
    assert figures["logits"].first_sqnr_db is None or figures["logits"].first_sqnr_db > 80   # step 1 is right
    assert figures["logits"].last_sqnr_db is not None and figures["logits"].last_sqnr_db < 40


CONV = """
model = "streaming:make_conv_stream"
example-inputs = {{ chunk = {{ shape = [1, 1, 32] }}, buffer = {{ shape = [1, 1, 6], value = 0.0 }} }}
calibration = "streaming:conv_calibration"
evaluate = "streaming:conv_evaluate"
sequence-steps = 50

[state]
buffer_out = "buffer"

[targets.board]
extends = "linux-arm64"
formats = [{formats}]
profile = {{ runs = 20, warmup = 2, threads = [1] }}
"""


@pytest.mark.slow
def test_convolution_with_a_context_buffer_declared_in_config(tmp_path: Path, cache_dir: Path) -> None:
    folder = project(tmp_path, CONV.format(formats='"tflite:fp32", "tflite:int8", "onnx:fp32", "onnx:int8"'))
    code, report, log = build(folder, "board")
    assert code == 0, log[-3000:]
    for artifact in report["artifacts"]:
        found = sequence(artifact)
        assert found["state"] == ["buffer_out -> buffer"] and found["state_from"] == "config"
        assert found["sequences"] == 2
        figures = step_figures(artifact)
        floor = 80 if artifact["precision"] == "fp32" else 15
        assert figures["events"]["worst_sqnr_db"] > floor, (artifact["format"], figures["events"])
    replay_bundle(folder / "out" / "board" / "bundle", {"tflite:fp32", "tflite:int8", "onnx:fp32", "onnx:int8"},
                  ["buffer_out", "buffer"])


def replay_bundle(bundle: Path, labels: set[str], state: list[str]) -> None:
    """The linux bundle's run.py, on this host as the board: each artifact replays the first recorded sequence
    with its state fed back and reproduces the outputs recorded at build time; with the state link removed
    from stream.json, the second call already differs."""
    import subprocess
    import sys

    stream = json.loads((bundle / "stream.json").read_text())
    assert stream["state"] == [state] and stream["calls"] == stream["sequence_calls"] == 50
    proc = subprocess.run([sys.executable, str(bundle / "run.py"), "--runs", "1"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(results) == labels and all(r["matches"] and r["calls"] == 50 for r in results.values()), results
    (bundle / "stream.json").write_text(json.dumps({**stream, "state": []}))
    proc = subprocess.run([sys.executable, str(bundle / "run.py"), "--runs", "1"], capture_output=True, text=True)
    assert proc.returncode == 1 and "differs from the build at call 2" in proc.stdout, proc.stdout + proc.stderr


LSTM = """
model = "streaming:make_tuple_lstm"
example-inputs = "streaming:tuple_lstm_example"
batch-dims = { x = 1, state = 1 }
calibration = "streaming:tuple_lstm_calibration"
evaluate = "streaming:tuple_lstm_evaluate"

[targets.stream]
extends = "android"
formats = ["pte:fp32", "pte:int8", "tflite:fp32", "tflite:int8", "onnx:fp32", "onnx:int8"]
profile = { runs = 20, warmup = 2, threads = [1] }
"""


@pytest.mark.slow
def test_torch_lstm_sequence_first_with_its_state_as_one_tuple(tmp_path: Path, cache_dir: Path) -> None:
    """nn.LSTM as torch ships it: x [T, N, F] and the (h, c) tuple [layers, N, H], the batch (two streams) on
    axis 1 of all three; was refused at calibration ("different sample counts [2, 5]") when axis 0 was assumed.
    The tuple argument becomes the inputs state_0 / state_1 (its batch-dims entry holds for both), the returned
    tuple next_state_0 / next_state_1, and the state is detected from those names."""
    folder = project(tmp_path, LSTM)
    code, report, log = build(folder)
    assert code == 0, log[-3000:]
    assert [(i["name"], i["batch_dim"]) for i in report["source"]["inputs"]] == [
        ("x", 1), ("state_0", 1), ("state_1", 1)]
    assert [o["name"] for o in report["source"]["outputs"]] == ["activity", "next_state_0", "next_state_1"]
    for artifact in report["artifacts"]:
        found = sequence(artifact)
        assert found["state"] == ["next_state_0 -> state_0", "next_state_1 -> state_1"], found["state"]
        assert found["sequences"] == 2 and found["initial_state"] == "zeros"
        figures = step_figures(artifact)
        floor = 80 if artifact["precision"] == "fp32" else 12
        assert all(o["worst_sqnr_db"] > floor for o in figures.values()), (artifact["format"], figures)


KERAS = """
model = "streaming:make_keras_spotter"
example-inputs = "streaming:keras_example"
calibration = "streaming:keras_calibration"
evaluate = "streaming:keras_evaluate"

[targets.stream]
extends = "android"
formats = ["tflite:fp32", "tflite:int8", "onnx:int8"]   # the Keras-to-PyTorch bridge takes one input
profile = { runs = 20, warmup = 2, threads = [1] }
"""


@pytest.mark.slow
def test_keras_gru_with_explicit_state_through_litert_and_onnx(tmp_path: Path, cache_dir: Path) -> None:
    """A Keras GRU layer given `initial_state` and returning its state: the state is found by name (next_state
    -> state), and the TFLiteConverter and tf2onnx artifacts are stepped over it, int8 calibrated on it."""
    folder = project(tmp_path, KERAS)
    code, report, log = build(folder)
    assert code == 0, log[-3000:]
    assert {a["format"] + ":" + a["precision"] for a in report["artifacts"]} == {
        "tflite:fp32", "tflite:int8", "onnx:int8"}
    for artifact in report["artifacts"]:
        found = sequence(artifact)
        assert found["state"] == ["next_state -> state"] and found["steps"] == 50, found
        figures = step_figures(artifact)
        floor = 60 if artifact["precision"] == "fp32" else 12
        assert figures["next_state"]["worst_sqnr_db"] > floor, (artifact["format"], figures)
        assert "step_agreement" not in figures["next_state"] and "step_agreement" in figures["logits"]


def test_a_keras_recurrent_loop_converts_with_a_static_batch(tmp_path: Path, cache_dir: Path) -> None:
    """A GRU left as a While loop: LiteRT's converter cannot lower its TensorList ops with a dynamic batch, so
    the SavedModel is exported again with batch 1 and the export says so."""
    toml = KERAS.replace("make_keras_spotter", "make_keras_spotter_loop").replace(
        'formats = ["tflite:fp32", "tflite:int8", "onnx:int8"]', 'formats = ["tflite:fp32"]')
    folder = project(tmp_path, toml)
    code, report, log = build(folder)
    assert code == 0, log[-3000:]
    (artifact,) = report["artifacts"]
    assert "TensorList" in artifact["export"]["metadata"]["batch"]
    assert step_figures(artifact)["next_state"]["worst_sqnr_db"] > 60


@pytest.fixture(scope="module")
def spotter_onnx(tmp_path_factory: pytest.TempPathFactory, spotter_weights: Path) -> Path:
    """The trained spotter as an ONNX graph whose state is `h0` in and `hn` out (torch's own naming)."""
    import torch

    folder = tmp_path_factory.mktemp("spotter-onnx")
    project(folder, "")
    shutil.copyfile(spotter_weights, folder / "spotter.pt")
    import importlib.util

    spec = importlib.util.spec_from_file_location("streaming_for_onnx", folder / "streaming.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.make_spotter()
    model.load_state_dict(torch.load(folder / "spotter.pt", weights_only=True))
    example = module.spotter_example()

    class Positional(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, features, h0, sr):
            out = self.inner(features, h0, sr)
            return out["logits"], out["stateN"]

    path = folder / "spotter.onnx"
    torch.onnx.export(Positional().eval(), tuple(torch.from_numpy(np.asarray(example[k]))
                                                 for k in ("features", "state", "sr")),
                      str(path), input_names=["features", "h0", "sr"], output_names=["logits", "hn"], dynamo=False)
    return path


ONNX_SOURCE = """
model = "spotter.onnx"
calibration = "streaming:onnx_calibration"
evaluate = "streaming:onnx_evaluate"

[example-inputs]
features = { shape = [1, 8, 16] }
h0 = { shape = [1, 1, 32], batch-dim = 1 }
sr = { shape = [], dtype = "int64", value = 16000 }

[targets.board]
extends = "linux-arm64"
formats = ["onnx:fp32", "onnx:int8"]   # the ONNX-to-TF bridge carries single-input models only
profile = { runs = 20, warmup = 2, threads = [1] }
"""
RENAMED = """

def onnx_calibration():
    return [{"features": b["features"], "h0": b["state"], "sr": b["sr"]} for b in spotter_calibration()]


def onnx_evaluate():
    for inputs, labels in spotter_evaluate():
        yield {"features": inputs["features"], "h0": inputs["state"], "sr": inputs["sr"]}, labels
"""


@pytest.mark.slow
def test_onnx_graph_with_a_state_loop_detected_from_h0_and_hn(spotter_onnx: Path, tmp_path: Path,
                                                              cache_dir: Path) -> None:
    folder = project(tmp_path, ONNX_SOURCE)
    shutil.copyfile(spotter_onnx, folder / "spotter.onnx")
    with open(folder / "streaming.py", "a") as fh:
        fh.write(RENAMED)
    code, report, log = build(folder, "board")
    assert code == 0, log[-3000:]
    inputs = {i["name"]: i for i in report["source"]["inputs"]}
    assert inputs["sr"]["shape"] == [] and inputs["h0"]["batch_dim"] == 1
    for artifact in report["artifacts"]:
        assert sequence(artifact)["state"] == ["hn -> h0"] and sequence(artifact)["state_from"] == "names"
        assert artifact["accuracy"] >= 0.9


def test_profile_takes_a_scalar_input_from_npz(spotter_onnx: Path, tmp_path: Path) -> None:
    np.savez(tmp_path / "call.npz", features=np.zeros((1, 8, 16), np.float32), h0=np.zeros((1, 1, 32), np.float32),
             sr=np.array(16000))
    proc = run_cli("profile", str(spotter_onnx), "--inputs", str(tmp_path / "call.npz"), "--runs", "5",
                   "--out", str(tmp_path / "out"), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (artifact,) = json.loads(proc.stdout[proc.stdout.index("{"):])["artifacts"]
    assert {i["name"]: i["shape"] for i in artifact["inputs"]} == {"features": [1, 8, 16], "h0": [1, 1, 32],
                                                                   "sr": []}


@pytest.mark.parametrize("extra,message", [
    ('\n[state]\nlogitz = "state"\n', "[state] names output 'logitz', which the model does not have"),
    ('\n[state]\nstateN = "features"\n', "[state] stateN = 'features': the output is [1, 1, 32] float32, the input "
                                         "takes [1, 8, 16] float32"),
    ("\nsequence-steps = 500\n", "give at least 500 evaluation samples"),
    ('\ninitial-state = "random"\n', "'initial-state' must be one of: zeros, data, got 'random'"),
], ids=["missing-output", "shape-mismatch", "too-few-samples", "initial-state"])
def test_bad_state_declarations_are_one_line_exit_2(tmp_path: Path, cache_dir: Path, extra: str,
                                                    message: str) -> None:
    toml = SPOTTER.format(formats='"onnx:fp32"').replace('weights = "spotter.pt"\n', "")
    head, tail = toml.split("\n[targets.stream]")
    folder = project(tmp_path, head + extra + "\n[targets.stream]" + tail)
    proc = run_cli("build", "--target", "stream", "--out", str(folder / "out"), cwd=folder)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("spec,message", [
    ('{ sr = { shape = [], dtype = "int64", batch-dim = 1 } }', "'example-inputs.sr.batch-dim' must be an axis"),
    ('{ sr = { shape = [], dtype = "int64", value = 1e30 } }', "'example-inputs.sr.value' must be an integer"),
    ('{ x = { shape = [2], batch = "no" } }', "'example-inputs.x.batch' must be true or false"),
], ids=["axis", "constant-range", "batch-flag"])
def test_bad_tensor_specs_are_config_errors(tmp_path: Path, spec: str, message: str) -> None:
    (tmp_path / "edgepipe.toml").write_text(f'model = "m:f"\nexample-inputs = {spec}\n')
    proc = run_cli("build", "--target", "android", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr, proc.stdout + proc.stderr


def test_tensors_cut_samples_along_each_tensors_own_batch_dimension() -> None:
    from edge_pipeline.tensors import Tensors

    data = Tensors(("x", "state", "sr"), (np.arange(12.0).reshape(4, 3), np.arange(24.0).reshape(2, 4, 3),
                                          np.array(16000)), (0, 1, None))
    assert len(data) == 4 and data.specs[2].shape == () and data.specs[1].batch_dim == 1
    parts = list(data.batches(2))
    assert [p.arrays[1].shape for p in parts] == [(2, 2, 3), (2, 2, 3)]
    assert np.array_equal(parts[1].arrays[1], data.arrays[1][:, 2:4]) and parts[1].arrays[2].shape == ()
    assert data[0:0].arrays[0].shape == (0, 3) and data[0:0].arrays[1].shape == (2, 0, 3)


def test_stored_data_keeps_its_layout_and_refuses_a_changing_unbatched_value(tmp_path: Path) -> None:
    from edge_pipeline.datafiles import Spool
    from edge_pipeline.errors import InputError
    from edge_pipeline.tensors import Tensors

    spool = Spool(tmp_path, "eval_inputs")
    for i in range(3):
        spool.append(Tensors(("x", "state", "sr"), (np.full((1, 3), i, np.float32), np.full((2, 1, 3), i, np.float32),
                                                    np.array(16000)), (0, 1, None)))
    stored = spool.finish()
    assert stored.dims == (0, 1, None) and len(stored) == 3
    assert stored.arrays[1].shape == (2, 3, 3) and np.array_equal(stored.arrays[1][0, :, 0], [0, 1, 2])
    assert stored.arrays[2].shape == () and int(stored.arrays[2]) == 16000
    changing = Spool(tmp_path / "other", "calibration")
    changing.append(Tensors(("sr",), (np.array(16000),), (None,)))
    with pytest.raises(InputError, match="input 'sr' has no batch dimension, but its value changes"):
        changing.append(Tensors(("sr",), (np.array(8000),), (None,)))


FRONT_END = '''
import numpy as np
import tensorflow as tf


class FrontEnd(tf.Module):
    """Log filterbank-style energies of any-length audio: shape signature [-1, -1]."""

    def __init__(self):
        self.w = tf.Variable(np.abs(np.random.default_rng(1).standard_normal((400, 40))).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="audio")])
    def __call__(self, audio):
        frames = tf.signal.frame(audio, 400, 160)
        return {"features": tf.math.log(tf.matmul(frames ** 2, self.w) + 1e-3)}


module = FrontEnd()
converter = tf.lite.TFLiteConverter.from_concrete_functions([module.__call__.get_concrete_function()], module)
open("frontend.tflite", "wb").write(converter.convert())
'''


def test_a_dynamic_length_tflite_is_sized_to_the_data_or_refused_by_name(tmp_path: Path) -> None:
    """LiteRT prepares (and XNNPACK plans) an interpreter at its declared shape; the runner resizes a fresh one
    to the data before it is prepared. Without data the dynamic dimension is named."""
    import subprocess
    import sys

    (tmp_path / "make.py").write_text(FRONT_END)
    subprocess.run([sys.executable, "make.py"], cwd=tmp_path, check=True, capture_output=True, timeout=300)
    np.savez(tmp_path / "second.npz", audio=np.random.default_rng(0).standard_normal((1, 16000)).astype(np.float32))
    proc = run_cli("profile", "frontend.tflite", "--inputs", "second.npz", "--runs", "5", "--out", "out", "--json",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (artifact,) = json.loads(proc.stdout[proc.stdout.index("{"):])["artifacts"]
    assert artifact["inputs"][0]["shape"] == [1, 16000] and artifact["outputs"][0]["shape"] == [1, 98, 40]
    proc = run_cli("profile", "frontend.tflite", "--runs", "5", "--out", "out2", cwd=tmp_path)
    assert proc.returncode == 2 and "input 'audio' has dynamic dimension(s) dim1" in proc.stderr, proc.stderr


def test_batch_dims_must_name_inputs_of_a_function(tmp_path: Path, cache_dir: Path) -> None:
    project(tmp_path, SPOTTER.format(formats='"onnx:fp32"').replace("{ state = 1 }", "{ state = 1, hidden = 1 }")
            .replace('weights = "spotter.pt"\n', ""))
    proc = run_cli("build", "--target", "stream", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2 and "batch-dims names 'hidden', which the example inputs do not have" in proc.stderr
    (tmp_path / "edgepipe.toml").write_text('model = "m:f"\nexample-inputs = [1, 4]\nbatch-dims = { input = 1 }\n')
    proc = run_cli("build", "--target", "android", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2 and "'batch-dims' describes a function's example inputs" in proc.stderr


@pytest.mark.parametrize("inputs,outputs,links", [
    (["features", "state", "sr"], ["logits", "stateN"], ["stateN -> state"]),
    (["x", "h0", "c0"], ["y", "hn", "cn"], ["hn -> h0", "cn -> c0"]),
    (["chunk", "cache_in"], ["events", "cache_out"], ["cache_out -> cache_in"]),
    (["frame", "hidden"], ["score", "next_hidden"], ["next_hidden -> hidden"]),
    (["x"], ["x_out"], []),                           # every input fed back: a stateless same-shape model
    (["audio", "gain"], ["audio_out"], []),           # shapes differ from `audio`'s below
], ids=["silero", "torch-lstm", "cache", "prefix", "denoiser", "shapes"])
def test_state_is_detected_from_names_and_shapes(inputs: list[str], outputs: list[str], links: list[str]) -> None:
    from edge_pipeline.measure.sequences import resolve_state
    from edge_pipeline.tensors import TensorSpec

    def spec(name: str) -> TensorSpec:
        return TensorSpec(name, (1, 4) if name in ("audio_out",) else (1, 8), "float32")

    found = resolve_state(None, [spec(n) for n in inputs], [spec(n) for n in outputs])
    assert [str(link) for link in found] == links


def test_steps_are_judged_on_the_right_calls_whatever_the_output_layout() -> None:
    """Per-frame logits [frames, classes] (no batch axis first), a state batched on axis 1 and a scalar output:
    step t of sequence s is call s*steps+t for each of them. A copy whose state stops at step 20 is refused over
    the last quarter; the faithful one is exact at every step."""
    from edge_pipeline.measure.sequence_verdict import judge_sequences
    from edge_pipeline.measure.sequences import SequencePlan, StateLink, join_calls, step_sequences
    from edge_pipeline.tensors import Tensors

    steps, sequences = 40, 3
    rng = np.random.default_rng(0)
    data = Tensors(("x", "state", "sr"), (rng.standard_normal((steps * sequences, 3)).astype(np.float32),
                                          np.zeros((2, steps * sequences, 4), np.float32), np.array(16000)),
                   (0, 1, None))

    def model(frozen_after: int | None):
        calls = {"n": 0}

        def call(batch: Tensors) -> list[tuple[str, object]]:
            x, state, _ = batch.arrays
            step = calls["n"] % steps
            calls["n"] += 1
            new = 0.9 * state + x.sum() * 0.1
            if frozen_after is not None and step >= frozen_after:
                new = state
            return [("frames", np.tile(new[0], (5, 1))[:, :2]), ("stateN", new), ("energy", np.float32(x.sum()))]
        return call

    links = (StateLink("stateN", "state"),)
    plan = SequencePlan(links, steps, "names")
    reference = step_sequences(model(None), data, plan, 1)
    assert [a.shape for a in reference.arrays] == [(120, 5, 2), (120, 2, 1, 4), (120,)]
    joined = join_calls(reference, links, {"x": 0, "state": 1, "sr": None})
    assert joined.arrays[1].shape == (2, 120, 4) and joined.dims == (0, 1, 0)
    found, problems = judge_sequences(step_sequences(model(None), data, plan, 1), reference, plan, 20.0, None)
    assert not problems and found["sequences"] == sequences
    assert all(v is None for o in found["outputs"] for v in o["step_sqnr_db"])
    faithful = {o["name"]: o for o in found["outputs"]}
    assert faithful["frames"]["step_agreement"] == [1.0] * steps and faithful["frames"]["worst_agreement"] == 1.0
    assert "step_agreement" not in faithful["stateN"] and "step_agreement" not in faithful["energy"]
    found, problems = judge_sequences(step_sequences(model(20), data, plan, 1), reference, plan, 20.0, None)
    figures = {o["name"]: o for o in found["outputs"]}
    assert figures["frames"]["step_sqnr_db"][:20] == [None] * 20 and figures["frames"]["step_sqnr_db"][25] < 20
    assert any("output 'stateN' SQNR falls to" in p and "steps 31-40 of 40" in p for p in problems), problems
    assert not any("'energy'" in p for p in problems)          # the scalar output does not depend on the state


def test_a_sequence_starts_from_the_state_its_data_holds_when_asked() -> None:
    """`initial-state = "data"`: each sequence's first call takes the state the data gives (a learned initial
    state, a stream resumed); later calls take the state fed back; with the default, zeros."""
    from edge_pipeline.measure.sequences import SequencePlan, StateLink, stepped
    from edge_pipeline.tensors import Tensors

    steps = 3
    data = Tensors(("x", "state"), (np.ones((6, 1), np.float32), np.full((6, 1), 5.0, np.float32)))

    def call(batch: Tensors) -> list[tuple[str, object]]:
        return [("next_state", batch.arrays[1] + batch.arrays[0])]

    for initial, first in (("zeros", 0.0), ("data", 5.0)):
        plan = SequencePlan((StateLink("next_state", "state"),), steps, "config", initial)
        fed = [float(inputs.arrays[1][0, 0]) for inputs, _ in stepped(call, data, plan, 1)]
        assert fed == [first, first + 1, first + 2] * 2, (initial, fed)
        assert SequencePlan.from_json(plan.to_json()) == plan


def test_tuple_and_dict_arguments_flatten_to_stable_names_and_back() -> None:
    """`(h, c)` -> state_0 / state_1, a dict -> state.h / state.c; positional batches flatten in order; a model's
    arguments are rebuilt from those names; deeper nesting is refused by name."""
    from edge_pipeline.errors import InputError
    from edge_pipeline.nesting import ArgumentGroup, argument_groups, flatten_arguments, nested_order

    h, c, x = np.zeros(1), np.ones(1), np.full(1, 2.0)
    assert list(flatten_arguments({"x": x, "state": (h, c)}, ["x", "state"], "data")) == ["x", "state_0", "state_1"]
    assert list(flatten_arguments((x, {"h": h, "c": c}), ["x", "state"], "data")) == ["x", "state.h", "state.c"]
    assert [a[0] for a in flatten_arguments((x, (h, c)), None, "data")] == [2.0, 0.0, 1.0]
    assert argument_groups(["x", "state"], ["x", "state.h", "state.c"]) == (
        ArgumentGroup("x"), ArgumentGroup("state", ("state.h", "state.c"), ("h", "c")))
    assert nested_order(["x", "state"], ["state_1", "x", "state_0"]) == ["x", "state_0", "state_1"]
    with pytest.raises(InputError, match="input 'state_0' nests a further tuple"):
        flatten_arguments({"x": x, "state": ((h, c), c)}, ["x", "state"], "example-inputs 'm:f'")


def test_a_converter_diagnostic_is_shown_without_its_call_site_chain() -> None:
    """TFLiteConverter's MLIR errors start with `<unknown>:0: error: loc(callsite(...))`: the 300 characters kept
    of the first line used to be all call-site chain; the user gets the diagnostic itself."""
    from targets.exporters.torch_capture import as_unsupported

    chain = 'loc(callsite(fused["TensorListReserve:", "gru/TensorArrayV2@f"] at fused["Call:", "Call_1"]))'
    line = f"<unknown>:0: error: {chain}: 'tf.TensorListReserve' op requires element_shape to be static"
    error = as_unsupported("TFLiteConverter failed", RuntimeError(f"{line}\n<unknown>:0: note: called from"))
    assert str(error) == "TFLiteConverter failed: 'tf.TensorListReserve' op requires element_shape to be static"
    assert str(as_unsupported("x", RuntimeError("loc(unclosed"))) == "x: loc(unclosed"
