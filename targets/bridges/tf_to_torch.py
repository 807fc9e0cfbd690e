"""TensorFlow / Keras -> PyTorch, through ONNX (tf2onnx) and onnx2torch, rewritten so torch.export takes it.

The result is a torch GraphModule with the source's own input layout (NHWC for Keras); every artifact built
from it is validated against the original Keras outputs like any other."""
from __future__ import annotations

import importlib.util
import re
import sys
import types
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, NoReturn

from edge_pipeline.errors import Unsupported
from edge_pipeline.plugins import Bridge, DataBundle, Model, QuantizeSettings

from ..exporters.onnx_export import tensorflow_to_onnx
from .work_folder import bridge_work_folder

if TYPE_CHECKING:
    import onnx


class TensorflowToTorch(Bridge):
    name: ClassVar[str] = "tf-to-torch"
    source_framework: ClassVar[str] = "tensorflow"
    target_framework: ClassVar[str] = "torch"
    frameworks: ClassVar[tuple[str, ...]] = ("tensorflow",)
    needs_calibration: ClassVar[bool] = False
    distributions: ClassVar[tuple[str, ...]] = ("tf2onnx", "onnx", "onnx2torch", "torch")

    def apply(self, model: Model, data: DataBundle, settings: QuantizeSettings) -> Model:
        work = bridge_work_folder("edgepipe-tf-to-torch-")
        tensorflow_to_onnx(model, work / "model.onnx")
        return onnx_file_to_torch(work / "model.onnx", model, data,
                                  "TensorFlow -> ONNX (tf2onnx) -> onnx2torch, fixed-shape rewrite")


class OnnxToTorch(Bridge):
    name: ClassVar[str] = "onnx-to-torch"
    source_framework: ClassVar[str] = "onnx"
    target_framework: ClassVar[str] = "torch"
    frameworks: ClassVar[tuple[str, ...]] = ("onnx",)
    needs_calibration: ClassVar[bool] = False
    distributions: ClassVar[tuple[str, ...]] = ("onnx", "onnx2torch", "torch")

    def apply(self, model: Model, data: DataBundle, settings: QuantizeSettings) -> Model:
        return onnx_file_to_torch(Path(model.module.path), model, data, "ONNX -> onnx2torch, fixed-shape rewrite")


def onnx_file_to_torch(path: Path, model: Model, data: DataBundle, route: str) -> Model:
    import onnx
    import torch

    onnx2torch = import_onnx2torch()
    from .onnx_graph_fixes import fix_for_export
    from .single_input import single_float_input

    graph = normalize_for_onnx2torch(onnx.load(str(path)))
    try:
        module = onnx2torch.convert(graph)
    except NotImplementedError as exc:
        found = re.search(r"operation_type='(\w+)', version=(\d+)", str(exc))
        op = f"{found.group(1)} (opset {found.group(2)})" if found else None
        layer = next((n.name for n in graph.graph.node if found and n.op_type == found.group(1)), None)
        reason = "no converter for this op" if found else str(exc)
        raise Unsupported(f"onnx2torch cannot convert the graph: {reason}", op=op, layer=layer) from exc
    example = torch.from_numpy(single_float_input(data, "tf-to-torch"))
    module = fix_for_export(module.eval(), example)
    bridged = replace(model, framework="torch", module=module, example_inputs=(example,),
                      input_names=data.example.names)
    return bridged.with_provenance(bridge=route)


def normalize_for_onnx2torch(graph: onnx.ModelProto) -> onnx.ModelProto:
    """onnx2torch knows opsets up to 17 and refuses Reshape(allowzero=1), which torch's exporter writes.
    allowzero only matters when the target shape holds a 0; where it holds none the flag is dropped."""
    from onnx import numpy_helper, version_converter

    opset = next((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), 17)
    if opset > 17:
        graph = version_converter.convert_version(graph, 17)
    constants_as_initializers(graph)
    constants = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
    for node in graph.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        shape = constants.get(node.input[1])
        for attribute in node.attribute:
            if attribute.name == "allowzero" and attribute.i == 1 and shape is not None and 0 not in shape:
                attribute.i = 0
    return graph


def constants_as_initializers(graph: onnx.ModelProto) -> None:
    """Moves top-level tensor `Constant` nodes into the initializers, in place. onnx2torch reads a conv's or
    gemm's weights from the initializers only (a Paddle export keeps them in Constant nodes: `KeyError` on the
    weight's name); the values are the same tensors, so the graph computes the same."""
    from onnx import TensorProto

    kept = []
    for node in graph.graph.node:
        if node.op_type == "Constant" and [a.name for a in node.attribute] == ["value"]:
            tensor = TensorProto()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
            graph.graph.initializer.append(tensor)
        else:
            kept.append(node)
    if len(kept) != len(graph.graph.node):
        del graph.graph.node[:]
        graph.graph.node.extend(kept)


def import_onnx2torch() -> types.ModuleType:
    """onnx2torch imports torchvision for its NMS and RoIAlign converters only, and PyPI's torchvision does
    not import beside the CPU torch build. Without torchvision, stand-ins that refuse those two ops are used."""
    stand_ins: tuple[types.ModuleType, ...] = ()
    if "torchvision" not in sys.modules and (importlib.util.find_spec("torchvision") is None
                                             or not _torchvision_imports()):
        def refuse(*_args: object, **_kwargs: object) -> NoReturn:
            raise Unsupported("this model uses an op that needs torchvision (NMS or RoIAlign), which is not available",
                              op="NonMaxSuppression/RoiAlign")

        vision = types.ModuleType("torchvision")
        ops = types.ModuleType("torchvision.ops")
        ops.roi_align = refuse  # type: ignore[attr-defined]
        ops.nms = refuse  # type: ignore[attr-defined]
        vision.ops = ops  # type: ignore[attr-defined]
        sys.modules["torchvision"], sys.modules["torchvision.ops"] = vision, ops
        stand_ins = (vision, ops)
    import onnx2torch

    # onnx2torch holds them now; left in sys.modules, a stand-in without __spec__ breaks every later
    # `find_spec("torchvision")` in this process (transformers raises ValueError on import)
    for name, module in zip(("torchvision", "torchvision.ops"), stand_ins):
        if sys.modules.get(name) is module:
            del sys.modules[name]
    return onnx2torch


def _torchvision_imports() -> bool:
    try:
        import torchvision  # noqa: F401
        return True
    except Exception:
        return False
