"""PyTorch -> TensorFlow SavedModel, through ONNX and onnx2tf, with the source's input layout kept.

onnx2tf turns NCHW graphs into NHWC ones; a thin serving function transposes back, so the bridged model
takes exactly the source's inputs and validation compares like with like. onnx2tf exits cleanly even when
its output is wrong: edgepipe's validation of every bridged artifact is what decides.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from edge_pipeline.errors import Unsupported
from edge_pipeline.plugins import Bridge, DataBundle, Model, QuantizeSettings
from targets.sources.keras_source import load_saved_model

from ..exporters.onnx_export import torch_to_onnx
from ..exporters.torch_capture import as_unsupported
from .single_input import single_float_input
from .work_folder import bridge_work_folder

if TYPE_CHECKING:
    import tensorflow as tf


class TorchToTensorflow(Bridge):
    name: ClassVar[str] = "torch-to-tf"
    source_framework: ClassVar[str] = "torch"
    target_framework: ClassVar[str] = "tensorflow"
    frameworks: ClassVar[tuple[str, ...]] = ("torch",)
    needs_calibration: ClassVar[bool] = False
    distributions: ClassVar[tuple[str, ...]] = ("torch", "onnx", "onnx2tf", "tensorflow-cpu")

    def apply(self, model: Model, data: DataBundle, settings: QuantizeSettings) -> Model:
        work = bridge_work_folder("edgepipe-torch-to-tf-")
        torch_to_onnx(model, work / "model.onnx")
        return onnx_file_to_tf(work / "model.onnx", model, data,
                               "torch -> ONNX (torch.onnx dynamo) -> onnx2tf SavedModel")


class OnnxToTensorflow(Bridge):
    name: ClassVar[str] = "onnx-to-tf"
    source_framework: ClassVar[str] = "onnx"
    target_framework: ClassVar[str] = "tensorflow"
    frameworks: ClassVar[tuple[str, ...]] = ("onnx",)
    needs_calibration: ClassVar[bool] = False
    distributions: ClassVar[tuple[str, ...]] = ("onnx", "onnx2tf", "tensorflow-cpu")

    def apply(self, model: Model, data: DataBundle, settings: QuantizeSettings) -> Model:
        return onnx_file_to_tf(Path(model.module.path), model, data, "ONNX -> onnx2tf SavedModel")


def onnx_file_to_tf(onnx_path: Path, model: Model, data: DataBundle, route: str) -> Model:
    import onnx2tf

    example = single_float_input(data, "ONNX-to-TensorFlow")      # refused before any conversion work
    work = bridge_work_folder("edgepipe-onnx-to-tf-")
    onnx_path = at_example_shape(onnx_path, example.shape, work / "static.onnx")
    try:
        onnx2tf.convert(input_onnx_file_path=str(onnx_path), output_folder_path=str(work / "nhwc"),
                        output_signaturedefs=True, tflite_backend="tf_converter", non_verbose=True)
    except SystemExit as exc:       # onnx2tf calls sys.exit on ops it cannot convert
        raise Unsupported(f"onnx2tf could not convert the ONNX graph (exit {exc.code})") from exc
    except Exception as exc:
        raise as_unsupported("onnx2tf conversion failed", exc) from exc
    folder = restore_layout(work / "nhwc", work / "saved_model", example.shape)
    handle = load_saved_model(folder)
    bridged = replace(model, framework="tensorflow", module=handle, example_inputs=(example,),
                      input_names=handle.input_names)
    return bridged.with_provenance(bridge=route)


def at_example_shape(onnx_path: Path, shape: tuple[int, ...], dest: Path) -> Path:
    """The graph with its input's dynamic dimensions fixed to the example's `shape` (written to `dest`), or the
    file itself where they are static. onnx2tf keeps a dynamic dimension dynamic ([None, None, None, 3]), and the
    layout of a channels-first input could not be restored from it."""
    import onnx

    graph = onnx.load(str(onnx_path))
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != len(shape) or all(d.HasField("dim_value") for d in dims):
        return onnx_path
    for dim, size in zip(dims, shape):
        dim.Clear()
        dim.dim_value = int(size)
    del graph.graph.value_info[:]            # intermediate shapes are inferred again at the fixed shape
    onnx.save(graph, str(dest))
    return dest


def restore_layout(nhwc_dir: Path, dest: Path, source_shape: tuple[int, ...]) -> Path:
    """Wraps onnx2tf's serving function so that it takes the source's (channels-first) input shape."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(nhwc_dir))
    inner = loaded.signatures["serving_default"]
    (input_name, spec), = inner.structured_input_signature[1].items()
    if tuple(spec.shape) == tuple(source_shape):
        return nhwc_dir
    rank = len(source_shape)
    perm = [0, *range(2, rank), 1]
    if tuple(np.array(source_shape)[perm]) != tuple(spec.shape):
        raise Unsupported(f"onnx2tf changed the input shape {list(source_shape)} to {list(spec.shape)}, "
                          f"which is not a channels-last transpose")

    class Serving(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner_module = loaded

        @tf.function(input_signature=[tf.TensorSpec(source_shape, tf.float32, name=input_name)])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return dict(inner(**{input_name: tf.transpose(x, perm)}))   # every output, under its own name

    module = Serving()
    tf.saved_model.save(module, str(dest), signatures={"serving_default": module.serve})
    return dest
