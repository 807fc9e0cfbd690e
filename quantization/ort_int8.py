"""ONNX Runtime quantization of an exported ONNX file: static QDQ (per-channel, calibrated) and dynamic int8.

For CNNs prefer static: ORT's dynamic ConvInteger kernels are much slower than fp32 on x86."""
from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from edge_pipeline.plugins import ArtifactTransform, DataBundle, QuantizeSettings
from edge_pipeline.tensors import Tensors, TensorSpec, order_inputs
from edge_pipeline.types import JsonObject
from targets.sources.onnx_source import onnx_input_specs

from . import ort_sensitivity, sensitivity
from .calibration import calibration_method
from .sensitivity import Budgeted, LayerRow, Predict, method_text

if TYPE_CHECKING:
    import onnx


class _Reader:
    """Feeds calibration samples, every input by its graph name, in the model's batch size (a
    CalibrationDataReader)."""

    def __init__(self, specs: list[TensorSpec], samples: Tensors, batch: int):
        self._batches = order_inputs(specs, samples).batches(batch)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else batch.as_dict()


def _preprocessed(src: Path, workdir: Path) -> Path:
    """ORT's pre-processing (its graph optimizer, then shape inference). Where the optimized graph no longer
    loads in ORT (a BERT's: its optimizer, run again at load, re-adds an initializer it already folded), the
    pre-processing runs without the optimizer."""
    import onnxruntime as ort
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = workdir / "pre.onnx"
    quant_pre_process(str(src), str(out), skip_symbolic_shape=True)
    try:
        ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    except Exception:   # ORT's own failure, whatever its class: the unoptimized route is the one left
        quant_pre_process(str(src), str(out), skip_symbolic_shape=True, skip_optimization=True)
    return out


class OrtStaticInt8(Budgeted, ArtifactTransform):
    name: ClassVar[str] = "ort-static-int8"
    frameworks: ClassVar[tuple[str, ...]] = ("onnx",)
    needs_calibration: ClassVar[bool] = True
    distributions: ClassVar[tuple[str, ...]] = ("onnxruntime",)
    calibration_methods: ClassVar[tuple[str, ...]] = ("minmax", "percentile", "entropy")

    def apply_artifact(self, src: Path, dest: Path, data: DataBundle, settings: QuantizeSettings) -> JsonObject:
        """Quantizes fully; ranks layers (sensitivity.py's modes) in one session over the float model with each
        layer's QDQ piece grafted on (ort_sensitivity.py) and, under a budget, excludes the most sensitive
        layers' nodes (`nodes_to_exclude`) until the drop holds."""
        import onnx

        method = calibration_method(self, settings)
        batch = data.batch
        with tempfile.TemporaryDirectory() as tmp:
            pre = _preprocessed(src, Path(tmp))
            graph = onnx.load(str(pre), load_external_data=False).graph
            layers = weighted_layers(graph, onnx.load(str(src), load_external_data=False).graph)
            specs = graph_input_specs(pre)
            outputs = (Path(tmp) / f"quantized-{i}.onnx" for i in itertools.count())

            def quantize(skip: frozenset[str] = frozenset()) -> tuple[Path, Predict]:
                out = next(outputs)
                excluded = [node for layer in skip for node in layers[layer]]
                _quantize_static(pre, out, _Reader(specs, data.calibration, batch), method, excluded)
                return out, ort_predict(out, batch)

            def rank(quantized: Path) -> tuple[list[LayerRow], int]:
                return ort_sensitivity.rank_layers(pre, quantized, layers, data.eval_inputs[:sensitivity.EVAL_SAMPLES],
                                                   batch, Path(tmp)), 0

            result, notes = self.fall_back(quantize, rank, ort_predict(pre, batch), data, settings,
                                           method_text(ort_sensitivity.WHAT, ort_sensitivity.NUMERICS))
            shutil.copyfile(result, dest)
        return {"scheme": "ORT static QDQ int8, per-channel weights", "calibration_samples": int(len(data.calibration)),
                "calibration_method": method, **notes}


def _quantize_static(src: Path, dest: Path, reader: _Reader, method: str, excluded: list[str]) -> None:
    """QDQ int8, per-channel weights, calibrated with `method`; the `excluded` nodes stay float."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    calibrate = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                 "entropy": CalibrationMethod.Entropy}[method]
    quantize_static(str(src), str(dest), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                    calibrate_method=calibrate, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    nodes_to_exclude=excluded or None)


WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def weighted_layers(graph: onnx.GraphProto, source_graph: onnx.GraphProto) -> dict[str, list[str]]:
    """Source layer name -> the ONNX nodes with weights it became. Names come from the exporter's scope
    metadata (torch.onnx) or the node path (tf2onnx: `model/layer/op`)."""
    scopes = {n.name: _scope(n) for n in source_graph.node}
    layers: dict[str, list[str]] = {}
    for node in graph.node:
        if node.op_type in WEIGHTED_OPS and node.name:
            layers.setdefault(scopes.get(node.name) or _scope(node), []).append(node.name)
    return layers


def _scope(node: onnx.NodeProto) -> str:
    import ast

    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            names = ast.literal_eval(prop.value)
            if len(names) >= 2:
                return str(names[-2])
    return node.name.rsplit("/", 1)[0] if "/" in node.name else node.name


def ort_predict(path: Path, batch: int) -> Predict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    specs = onnx_input_specs(session)
    return sensitivity.batched(lambda x: session.run(None, order_inputs(specs, x).as_dict())[0], batch)


def graph_input_specs(path: Path) -> list[TensorSpec]:
    import onnxruntime as ort

    return onnx_input_specs(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]))


class OrtDynamicInt8(ArtifactTransform):
    name: ClassVar[str] = "ort-dynamic-int8"
    frameworks: ClassVar[tuple[str, ...]] = ("onnx",)
    needs_calibration: ClassVar[bool] = False
    distributions: ClassVar[tuple[str, ...]] = ("onnxruntime",)

    def apply_artifact(self, src: Path, dest: Path, data: DataBundle, settings: QuantizeSettings) -> JsonObject:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with tempfile.TemporaryDirectory() as tmp:
            quantize_dynamic(str(_preprocessed(src, Path(tmp))), str(dest), weight_type=QuantType.QInt8)
        return {"scheme": "ORT dynamic int8 (int8 weights, activations quantized at run time)"}
