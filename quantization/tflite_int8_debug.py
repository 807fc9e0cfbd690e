"""Per-layer sensitivity and accuracy-budgeted fallback for TFLiteConverter's full-int8 models (Keras/TF sources).

TF's own QuantizationDebugger calibrates once and then re-quantizes the calibrated model with `denylisted_nodes`
in milliseconds: "only this layer int8" denylists every other op, fallback denylists the most sensitive layers'
ops. Every variant runs in the LiteRT interpreter, so the numbers are the artifact runtime's own.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from edge_pipeline.plugins import DataBundle
from edge_pipeline.sources.keras_source import run_tf_named
from edge_pipeline.tensors import order_inputs

from .sensitivity import Predict, batched, largest, rank_and_fall_back

WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
NUMERICS = "LiteRT interpreter on TFLiteConverter's int8 model (other ops denylisted by QuantizationDebugger)"


def int8_with_fallback(converter: Any, flatbuffer: bytes, keras_model: Any, data: DataBundle,
                       budget: float | None, rank: bool = True) -> tuple[bytes, dict[str, Any]]:
    """`converter` is configured for full int8 and has converted `flatbuffer` already."""
    import tensorflow as tf

    if not rank and budget is None:
        return flatbuffer, {}
    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=converter.representative_dataset)
    outputs, layers = _op_outputs(debugger.calibrated_model, keras_model)
    batch = data.batch

    def quantize(only: str | None = None, skip: frozenset[str] = frozenset(),
                 calibration: int | None = None) -> tuple[bytes, Predict]:   # calibrated once by the debugger
        if only is None and not skip:
            return flatbuffer, litert_predict(flatbuffer, batch)
        denied = [name for name in outputs if name != layers[only]] if only is not None else [layers[s] for s in skip]
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(
            denylisted_nodes=denied, fully_quantize=only is None)   # the shipped variant keeps int8 input/output
        variant = debugger.get_nondebug_quantized_model()
        return variant, litert_predict(variant, batch)

    reference = batched(lambda x: run_tf_named(keras_model, x)[0][1], batch)
    chosen, notes = rank_and_fall_back(quantize, reference, largest([(name, 1) for name in layers]), data, budget,
                                       NUMERICS, rank)
    return chosen, notes


def _op_outputs(calibrated: bytes, keras_model: Any) -> tuple[list[str], dict[str, str]]:
    """Every op's output tensor name, and source layer -> output of its weighted op. Keras layers with kernels
    pair with the weighted ops in order; when the counts differ, the converter's tensor names name them."""
    from ai_edge_litert.interpreter import Interpreter

    from targets.runners.litert_op_profile import layer_name

    interpreter = Interpreter(model_content=calibrated)
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()   # the debugger itself reads ops this way
    outputs = [names[op["outputs"][0]] for op in ops if op["outputs"]]
    weighted = [names[op["outputs"][0]] for op in ops if op["op_name"] in WEIGHTED_OPS and op["outputs"]]
    kernels = [layer.name for layer in _layers(keras_model) if getattr(layer, "kernel", None) is not None
               or getattr(layer, "depthwise_kernel", None) is not None]
    if len(kernels) == len(weighted):
        return outputs, dict(zip(kernels, weighted))
    return outputs, {(layer_name(out) or out): out for out in weighted}


def _layers(model: Any) -> list[Any]:
    found = []
    for layer in getattr(model, "layers", []):
        found += _layers(layer) if hasattr(layer, "layers") else [layer]
    return found


def litert_predict(flatbuffer: bytes, batch: int) -> Predict:
    from ai_edge_litert.interpreter import Interpreter

    from targets.runners.litert import LitertSession

    interpreter = Interpreter(model_content=flatbuffer, num_threads=1)
    interpreter.allocate_tensors()
    session = LitertSession(interpreter)
    return batched(lambda x: session.run(list(order_inputs(session.input_specs, x).arrays))[0], batch)
