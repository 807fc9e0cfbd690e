"""Per-layer sensitivity and accuracy-budgeted fallback for TFLiteConverter's full-int8 models (Keras/TF sources).

Ranking: the shipped int8 model and the calibrated float model (the same ops, the same tensor names) run once
each in the LiteRT interpreter with every intermediate tensor kept; each weighted op's int8 output, dequantized,
is compared with the float one, per channel (sensitivity.LayerErrors). An int8 model has no float tensor before
its quantizers, so this error is accumulated from the input up to that op. (QuantizationDebugger's own layer
statistics compare each op with its float kernel run on the same *quantized* inputs, which cannot see a layer
whose input quantizer ruins its input: the layer after an outlier.) Fallback: TF's QuantizationDebugger
calibrates once and re-quantizes the calibrated model with the most sensitive layers' ops `denylisted_nodes`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from edge_pipeline.plugins import DataBundle
from edge_pipeline.tensors import Tensors, order_inputs
from edge_pipeline.types import JsonObject
from targets.sources.keras_source import SavedModelHandle, run_tf_named

from .sensitivity import (
    EVAL_SAMPLES,
    LayerErrors,
    LayerRow,
    Predict,
    batched,
    for_batches,
    method_text,
    rank_and_fall_back,
)

if TYPE_CHECKING:
    import keras
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from targets.runners.litert_session import LitertSession

    SourceModel = keras.Model | SavedModelHandle

WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
NUMERICS = ("LiteRT interpreter (reference kernels, every tensor kept) on the shipped int8 model and the calibrated "
            "float model")
WHAT = ("per-channel SQNR of each weighted op's int8 output vs the float model's (error accumulated from the input "
        "up to that op: an int8 model has no float tensor before its quantizers)")
TensorDetail = dict[str, object]   # one entry of the interpreter's get_tensor_details()


class _Debugger:
    """TF's QuantizationDebugger, created on first need: it calibrates once more (counted as a quantization pass)."""

    def __init__(self, converter: tf.lite.TFLiteConverter, keras_model: SourceModel):
        self.converter, self.keras_model = converter, keras_model
        self.created: tuple[tf.lite.experimental.QuantizationDebugger, dict[str, str]] | None = None

    def get(self) -> tuple[tf.lite.experimental.QuantizationDebugger, dict[str, str]]:
        """The debugger and source layer -> output tensor of its weighted op."""
        if self.created is None:
            import tensorflow as tf

            found = tf.lite.experimental.QuantizationDebugger(
                converter=self.converter, debug_dataset=self.converter.representative_dataset)
            self.created = found, _op_outputs(found.calibrated_model, self.keras_model)[1]
        return self.created


def int8_with_fallback(converter: tf.lite.TFLiteConverter, flatbuffer: bytes, keras_model: SourceModel,
                       data: DataBundle, budget: float | None,
                       rank: str | bool = "on-failure") -> tuple[bytes, JsonObject]:
    """`converter` is configured for full int8 and has converted `flatbuffer` already. `rank`: the
    `[quantization] sensitivity` mode."""
    import tensorflow as tf

    mode = rank if isinstance(rank, str) else ("always" if rank else "never")
    batch = data.batch
    debugger = _Debugger(converter, keras_model)

    def quantize(skip: frozenset[str] = frozenset()) -> tuple[bytes, Predict]:
        if not skip:
            return flatbuffer, litert_predict(flatbuffer, batch)
        found, layers = debugger.get()
        found.options = tf.lite.experimental.QuantizationDebugOptions(
            denylisted_nodes=[layers[s] for s in skip], fully_quantize=True)   # int8 input/output kept
        variant = found.get_nondebug_quantized_model()
        return variant, litert_predict(variant, batch)

    def rank_layers(quantized: bytes) -> tuple[list[LayerRow], int]:
        created = debugger.created is None
        found, layers = debugger.get()
        rows = _accumulated_errors(found.calibrated_model, quantized, layers, data.eval_inputs[:EVAL_SAMPLES], batch)
        return rows, int(created)

    reference = batched(lambda x: run_tf_named(keras_model, x)[0][1], batch)
    return rank_and_fall_back(quantize, rank_layers, reference, data, budget, method_text(WHAT, NUMERICS), mode)


def _accumulated_errors(calibrated: bytes, quantized: bytes, layers: dict[str, str], inputs: Tensors,
                        batch: int) -> list[LayerRow]:
    from targets.runners.litert_session import dequantize

    f_interp, f_session, f_tensors = every_tensor_kept(calibrated)
    q_interp, q_session, q_tensors = every_tensor_kept(quantized)
    points = {layer: name for layer, name in layers.items() if name in f_tensors and name in q_tensors}
    errors = LayerErrors()

    def run(x: Tensors) -> None:
        f_session.run(list(order_inputs(f_session.input_specs, x).arrays))
        q_session.run(list(order_inputs(q_session.input_specs, x).arrays))
        for layer, name in points.items():
            reference = f_interp.get_tensor(f_tensors[name]["index"])
            got = dequantize(q_interp.get_tensor(q_tensors[name]["index"]), q_tensors[name])
            errors.add(layer, reference, got, -1)

    for_batches(inputs, batch, run)
    return errors.rows({layer: [layer] for layer in points})


def every_tensor_kept(content: bytes) -> tuple[Interpreter, LitertSession, dict[str, TensorDetail]]:
    """A one-thread interpreter that keeps every intermediate tensor, its session, and its tensors by name."""
    from ai_edge_litert.interpreter import Interpreter

    from targets.runners.litert_session import LitertSession

    interpreter = Interpreter(model_content=content, num_threads=1, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    return interpreter, LitertSession(interpreter), {t["name"]: t for t in interpreter.get_tensor_details()}


def _op_outputs(calibrated: bytes, keras_model: SourceModel) -> tuple[list[str], dict[str, str]]:
    """Every op's output tensor name, and source layer -> output of its weighted op. Keras layers with kernels
    pair with the weighted ops in order; when the counts differ, the converter's tensor names name them."""
    from ai_edge_litert.interpreter import Interpreter

    from targets.runners.litert_op_profile import layer_name

    interpreter = Interpreter(model_content=calibrated)
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()   # the debugger itself reads ops this way
    outputs = [names[op["outputs"][0]] for op in ops if op["outputs"]]
    weighted = [names[op["outputs"][0]] for op in ops if op["op_name"] in WEIGHTED_OPS and op["outputs"]]
    kernels = [layer.name for layer in _layers(keras_model) if _has_kernel(layer)]
    if len(kernels) == len(weighted):
        return outputs, dict(zip(kernels, weighted))
    return outputs, {(layer_name(out) or out): out for out in weighted}


def _layers(model: SourceModel) -> list[keras.layers.Layer]:
    """Every leaf layer, nested models opened (a SavedModel has none to pair)."""
    if isinstance(model, SavedModelHandle):
        return []
    import keras

    found = []
    for layer in model.layers:
        found += _layers(layer) if isinstance(layer, keras.Model) else [layer]
    return found


def _has_kernel(layer: keras.layers.Layer) -> bool:
    """Conv and Dense layers hold a `kernel`, depthwise convolutions a `depthwise_kernel` (unbuilt: neither)."""
    try:
        if layer.kernel is not None:
            return True
    except AttributeError:
        pass
    try:
        return layer.depthwise_kernel is not None
    except AttributeError:
        return False


def litert_predict(flatbuffer: bytes, batch: int) -> Predict:
    from ai_edge_litert.interpreter import Interpreter

    from targets.runners.litert_session import LitertSession

    interpreter = Interpreter(model_content=flatbuffer, num_threads=1)
    interpreter.allocate_tensors()
    session = LitertSession(interpreter)
    return batched(lambda x: session.run(list(order_inputs(session.input_specs, x).arrays))[0], batch)
