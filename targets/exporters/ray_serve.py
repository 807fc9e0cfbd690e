"""A Ray Serve application folder: the ONNX model, edgepipe's deployment (ONNX Runtime with `@serve.batch`),
the signature it checks requests against, and `serve_config.yaml` to deploy it (`serve run` here, `serve deploy`
on a cluster). Made from the same ONNX export as the `onnx` format."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import ClassVar

from edge_pipeline.tensors import TensorSpec
from edge_pipeline.types import JsonObject

from ..servers.ray_layout import APP, APP_FILE, CONFIG_FILE, MAX_BATCH, MODEL_FILE, serve_config
from ..servers.signature import SIGNATURE_FILE, ServedSignature
from .onnx import OnnxExporter


class RayServeExporter(OnnxExporter):
    name: ClassVar[str] = "ray-serve"
    format: ClassVar[str] = "rayserve"
    suffix: ClassVar[str] = "-rayserve"
    is_directory: ClassVar[bool] = True
    precisions: ClassVar[dict[str, str | None]] = {"fp32": None}
    runner: ClassVar[str | None] = "ray-serve"
    distributions: ClassVar[tuple[str, ...]] = ("torch", "onnx", "onnxscript", "tf2onnx", "onnxruntime", "ray")

    def finish(self, onnx_path: Path, dest: Path) -> JsonObject:
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(onnx_path, dest / MODEL_FILE)
        shutil.copyfile(APP, dest / APP_FILE)   # shipped as it is: importing this plugin does not import Ray
        signature = onnx_signature(onnx_path)
        (dest / SIGNATURE_FILE).write_text(signature.to_json())
        (dest / CONFIG_FILE).write_text(serve_config())
        return {"application": APP_FILE, "config": CONFIG_FILE, "runtime": "ONNX Runtime (CPU)",
                "batching": f"@serve.batch up to {MAX_BATCH} requests" if signature.batch == "dynamic" else
                            "requests run one by one (the ONNX model's batch dimension is fixed)"}


def onnx_signature(onnx_path: Path) -> ServedSignature:
    """The graph's own inputs (not its initializers) and outputs; batched together only when every input's first
    dimension is symbolic."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    specs = tuple(TensorSpec(i.name, tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "dim")
                                           for d in i.type.tensor_type.shape.dim),
                             onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type).name)
                  for i in inputs)
    dynamic = all(s.shape and not isinstance(s.shape[0], int) for s in specs)
    return ServedSignature(specs, tuple(o.name for o in graph.output), "dynamic" if dynamic else "static")
