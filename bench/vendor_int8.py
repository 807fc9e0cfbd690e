"""The vendors' default int8 (and fp32) called by hand, as a user without edgepipe would, and a plain runner for
the files they write: ExecuTorch (torch.export -> PT2E XNNPACKQuantizer, per-channel symmetric -> XNNPACK lowering,
the ExecuTorch runtime) and LiteRT (litert-torch with its PT2E quantizer, or TFLiteConverter full int8 with a
representative dataset for a Keras model; the ai_edge_litert interpreter). One thread everywhere."""
from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _pt2e(module: Any, example: tuple, quantizer: Any, calibration: list[np.ndarray], fold: bool) -> Any:
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    prepared = prepare_pt2e(torch.export.export(module, example).module(), quantizer)
    with torch.no_grad():
        for sample in calibration:
            prepared(torch.from_numpy(sample))
    return convert_pt2e(prepared, fold_quantize=fold)


def pte(module: Any, example: tuple) -> bytes:
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    program = torch.export.export(module, example)
    return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer


def pte_int8(module: Any, example: tuple, calibration: list[np.ndarray]) -> tuple[bytes, float]:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    converted = _pt2e(module, example, quantizer, calibration, True)
    return pte(converted, example), weight_share_fx(converted)


def tflite(module: Any, example: tuple, quant_config: Any = None) -> bytes:
    import litert_torch

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.tflite"
        litert_torch.convert(module, example, quant_config=quant_config).export(str(path))
        return path.read_bytes()


def tflite_int8(module: Any, example: tuple, calibration: list[np.ndarray]) -> tuple[bytes, float]:
    from litert_torch.quantize import pt2e_quantizer
    from litert_torch.quantize.quant_config import QuantConfig

    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True))
    converted = _pt2e(module, example, quantizer, calibration, False)
    return tflite(converted, example, QuantConfig(pt2e_quantizer=quantizer)), weight_share_fx(converted)


def keras_tflite(keras_model: Any, calibration: list[np.ndarray] | None) -> bytes:
    """TFLiteConverter on the Keras 3 model's SavedModel export; with calibration samples, the documented full
    int8 recipe (Optimize.DEFAULT, representative dataset, int8 builtins, int8 input and output)."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        keras_model.export(str(Path(tmp) / "saved"), format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(Path(tmp) / "saved"))
        if calibration is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([s] for s in calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = converter.inference_output_type = tf.int8
        return converter.convert()


def weight_share_fx(converted: Any) -> float:
    """Share of weight elements (tensors of 2+ dims) stored int8 in a converted PT2E graph: folded int8 constants,
    or float weights that feed a quantize op (litert-torch keeps them unfolded)."""
    import torch

    int8 = total = 0
    for node in converted.graph.nodes:
        if node.op != "get_attr":
            continue
        value = getattr(converted, str(node.target), None)
        if not isinstance(value, torch.Tensor) or value.dim() < 2:
            continue
        total += value.numel()
        quantized = value.dtype == torch.int8 or any("quantize_per_channel" in str(u.target) or
                                                     "quantize_per_tensor" in str(u.target) for u in node.users)
        int8 += value.numel() if quantized else 0
    return round(int8 / total, 4) if total else 0.0


def weight_share_tflite(path: Path) -> float:
    """Share of constant weight elements (tensors of 2+ dims with data) stored int8 in a .tflite flatbuffer."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    int8 = total = 0
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            data = model.buffers[tensor.buffer].data
            if data is None or len(data) == 0 or len(tensor.shape) < 2:
                continue
            count = int(np.prod(tensor.shape))
            total += count
            int8 += count if tensor.type == 9 else 0     # TensorType.INT8
    return round(int8 / total, 4) if total else 0.0


def runner(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """A one-thread session on the file; takes one float32 sample (batch 1), returns the first output as float32
    (an int8 LiteRT model's input and output are (de)quantized with the tensor's own scale and zero point)."""
    if path.suffix == ".pte":
        import torch
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime

        portable_lib._unsafe_reset_threadpool(1)
        method = Runtime.get().load_program(str(path)).load_method("forward")
        return lambda x: method.execute([torch.from_numpy(x)])[0].numpy()
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    (inp,), out = interpreter.get_input_details(), interpreter.get_output_details()[0]

    def run(x: np.ndarray) -> np.ndarray:
        scale, zero = inp["quantization"]
        if inp["dtype"] == np.int8:
            x = np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])
        o_scale, o_zero = out["quantization"]
        return (y.astype(np.float32) - o_zero) * o_scale if out["dtype"] == np.int8 else y.astype(np.float32)
    return run


def outputs_and_latency(path: Path, inputs: np.ndarray, warmup: int = 5, runs: int = 30) -> tuple[np.ndarray, dict]:
    """Every evaluation sample through the file, then p50 / p90 ms of `runs` timed calls on the first one."""
    run = runner(path)
    outputs = np.concatenate([run(inputs[i:i + 1]) for i in range(len(inputs))])
    for _ in range(warmup):
        run(inputs[:1])
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run(inputs[:1])
        times.append((time.perf_counter() - started) * 1000)
    return outputs, {"p50_ms": round(float(np.percentile(times, 50)), 3),
                     "p90_ms": round(float(np.percentile(times, 90)), 3), "runs": runs, "threads": 1}
