"""`edgepipe profile` on artifacts edgepipe did not build (and on ones it did, against a reference)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from .conftest import run_cli
from .test_keras_and_bridges import _shrink_model

pytestmark = pytest.mark.slow


def profile(*args: str) -> tuple[int, dict]:
    proc = run_cli("profile", *args, "--json", "--runs", "20", "--warmup", "2")
    return proc.returncode, json.loads(proc.stdout.splitlines()[0] if proc.returncode in (2, 3) else proc.stdout)


def vendor_tflite(path: Path) -> None:
    """A .tflite from TensorFlow's own converter, full int8, that edgepipe never saw."""
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.Input((6,)), tf.keras.layers.Dense(5, activation="relu"),
                                 tf.keras.layers.Dense(3)])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([np.random.default_rng(i).random((1, 6), dtype=np.float32)]
                                                for i in range(20))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())


def test_profile_a_vendor_int8_tflite_and_a_foreign_onnx(cache_dir: Path, tmp_path: Path) -> None:
    vendor_tflite(tmp_path / "vendor.tflite")
    code, report = profile(str(tmp_path / "vendor.tflite"), "--out", str(tmp_path / "out"))
    assert code == 0, report
    (art,) = report["artifacts"]
    assert art["format"] == "tflite" and art["input_shape"] == [1, 6] and art["input_dtypes"] == ["int8"]
    assert art["runtime"] == "LiteRT interpreter" and art["latency_ms"]["p50"] > 0
    assert art["measured_on"].startswith("this ") and " host (" in art["measured_on"]
    assert (tmp_path / "out" / "vendor.tflite" / "report.html").is_file()

    _shrink_model(tmp_path / "shrinky.onnx")
    code, report = profile(str(tmp_path / "shrinky.onnx"), "--target", "linux-arm64", "--out", str(tmp_path / "out"))
    assert code == 0, report
    (art,) = report["artifacts"]
    assert art["runtime"] == "ONNX Runtime (CPU)" and art["measured_on"].startswith("host-emulated linux-arm64 profile")
    assert {e["threads"] for e in art["latency_by_threads"]} >= {1}


def test_profile_against_a_reference_with_real_inputs(android_build: dict, tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    images = (load_digits().images[:40] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    np.savez(tmp_path / "digits.npz", x=images)
    folder = android_build["out"] / "android"
    code, report = profile(str(folder / "model-int8.tflite"), "--inputs", str(tmp_path / "digits.npz"),
                           "--reference", str(folder / "model-fp32.pte"), "--out", str(tmp_path / "out"))
    assert code == 0, report
    (art,) = report["artifacts"]
    assert art["agreement"] >= 0.95 and art["validation"]["passed"]


def test_profile_bad_input(cache_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "model.h5").write_bytes(b"x")
    code, payload = profile(str(tmp_path / "model.h5"))
    assert code == 2 and "no runner reads this kind of file" in payload["error"]["message"]
    code, payload = profile(str(tmp_path / "missing.tflite"))
    assert code == 2 and "artifact not found" in payload["error"]["message"]
    (tmp_path / "corrupt.tflite").write_bytes(b"\x00" * 64)
    code, payload = profile(str(tmp_path / "corrupt.tflite"))
    assert code == 2 and "not a loadable LiteRT model" in payload["error"]["message"]
