"""ONNX Runtime quantization of an exported ONNX file: static QDQ (per-channel, calibrated) and dynamic int8.

For CNNs prefer static: ORT's dynamic ConvInteger kernels are much slower than fp32 on x86."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edge_pipeline.plugins import DataBundle


class _Reader:
    """Feeds calibration samples in the model's batch size (a CalibrationDataReader)."""

    def __init__(self, input_name: str, samples: np.ndarray, batch: int):
        usable = (len(samples) // batch) * batch
        self._batches = iter(samples[i:i + batch] for i in range(0, usable, batch))
        self._name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self._name: np.ascontiguousarray(batch)}


def _preprocessed(src: Path, workdir: Path) -> Path:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = workdir / "pre.onnx"
    quant_pre_process(str(src), str(out), skip_symbolic_shape=True)
    return out


class OrtStaticInt8:
    name: ClassVar[str] = "ort-static-int8"
    applies_to: ClassVar[str] = "artifact"
    frameworks: ClassVar[tuple[str, ...]] = ("onnx",)
    needs_calibration: ClassVar[bool] = True
    distributions: ClassVar[tuple[str, ...]] = ("onnxruntime",)
    calibration_methods: ClassVar[tuple[str, ...]] = ("minmax", "percentile", "entropy")
    calibration_method: str = "minmax"

    def apply_artifact(self, src: Path, dest: Path, data: DataBundle) -> dict[str, Any]:
        import onnx
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                  "entropy": CalibrationMethod.Entropy}[self.calibration_method]

        input_name = onnx.load(str(src), load_external_data=False).graph.input[0].name
        with tempfile.TemporaryDirectory() as tmp:
            quantize_static(str(_preprocessed(src, Path(tmp))), str(dest),
                            _Reader(input_name, data.calibration, data.example.shape[0]),
                            quant_format=QuantFormat.QDQ, per_channel=True, calibrate_method=method,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
        return {"scheme": "ORT static QDQ int8, per-channel weights", "calibration_samples": int(len(data.calibration)),
                "calibration_method": self.calibration_method}


class OrtDynamicInt8:
    name: ClassVar[str] = "ort-dynamic-int8"
    applies_to: ClassVar[str] = "artifact"
    frameworks: ClassVar[tuple[str, ...]] = ("onnx",)
    needs_calibration: ClassVar[bool] = False
    distributions: ClassVar[tuple[str, ...]] = ("onnxruntime",)

    def apply_artifact(self, src: Path, dest: Path, data: DataBundle) -> dict[str, Any]:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with tempfile.TemporaryDirectory() as tmp:
            quantize_dynamic(str(_preprocessed(src, Path(tmp))), str(dest), weight_type=QuantType.QInt8)
        return {"scheme": "ORT dynamic int8 (int8 weights, activations quantized at run time)"}
