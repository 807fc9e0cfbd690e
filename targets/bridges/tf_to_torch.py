"""TensorFlow / Keras -> PyTorch, through ONNX (tf2onnx) and onnx2torch, rewritten so torch.export takes it.

The result is a torch GraphModule with the source's own input layout (NHWC for Keras); every artifact built
from it is validated against the original Keras outputs like any other."""
from __future__ import annotations

import importlib.util
import sys
import tempfile
import types
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from edge_pipeline.errors import Unsupported
from edge_pipeline.plugins import DataBundle, Model

from ..exporters.onnx_export import tensorflow_to_onnx


class TensorflowToTorch:
    name: ClassVar[str] = "tf-to-torch"
    bridge: ClassVar[tuple[str, str]] = ("tensorflow", "torch")
    frameworks: ClassVar[tuple[str, ...]] = ("tensorflow",)
    needs_calibration: ClassVar[bool] = False
    distributions: ClassVar[tuple[str, ...]] = ("tf2onnx", "onnx", "onnx2torch", "torch")

    def apply(self, model: Model, data: DataBundle) -> Model:
        work = Path(tempfile.mkdtemp(prefix="edgepipe-tf-to-torch-"))
        tensorflow_to_onnx(model, work / "model.onnx")
        return onnx_file_to_torch(work / "model.onnx", model, data,
                                  "TensorFlow -> ONNX (tf2onnx) -> onnx2torch, fixed-shape rewrite")


def onnx_file_to_torch(path: Path, model: Model, data: DataBundle, route: str) -> Model:
    import onnx
    import torch

    onnx2torch = import_onnx2torch()
    from .onnx_graph_fixes import fix_for_export

    graph = onnx.load(str(path))
    try:
        module = onnx2torch.convert(graph)
    except NotImplementedError as exc:
        op = str(exc).split("(")[-1].split(",")[0] if "operation_type" in str(exc) else None
        layer = next((n.name for n in graph.graph.node if op and op in str(exc) and n.op_type == op), None)
        raise Unsupported(f"onnx2torch cannot convert the graph: {exc}", op=op, layer=layer) from exc
    example = torch.from_numpy(data.example.copy())
    module = fix_for_export(module.eval(), example)
    provenance = {**model.provenance, "bridge": route}
    return replace(model, framework="torch", module=module, example_inputs=(example,), provenance=provenance)


def import_onnx2torch() -> types.ModuleType:
    """onnx2torch imports torchvision for its NMS and RoIAlign converters only, and PyPI's torchvision does
    not import beside the CPU torch build. Without torchvision, stand-ins that refuse those two ops are used."""
    if importlib.util.find_spec("torchvision") is None or not _torchvision_imports():
        def refuse(*_args, **_kwargs):
            raise Unsupported("this model uses an op that needs torchvision (NMS or RoIAlign), which is not available",
                              op="NonMaxSuppression/RoiAlign")

        vision = types.ModuleType("torchvision")
        ops = types.ModuleType("torchvision.ops")
        ops.roi_align = refuse  # type: ignore[attr-defined]
        ops.nms = refuse  # type: ignore[attr-defined]
        vision.ops = ops  # type: ignore[attr-defined]
        sys.modules["torchvision"], sys.modules["torchvision.ops"] = vision, ops
    import onnx2torch

    return onnx2torch


def _torchvision_imports() -> bool:
    try:
        import torchvision  # noqa: F401
        return True
    except Exception:
        return False
