"""A Ray Serve application folder: the ONNX model, edgepipe's deployment (ONNX Runtime with `@serve.batch`),
the signature it checks requests against, and `serve_config.yaml` to deploy it (`serve run` here, `serve deploy`
on a cluster). Made from the same ONNX export as the `onnx` format."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import ClassVar

from edge_pipeline.types import JsonObject

from ..servers.ray_layout import APP_FILE, CONFIG_FILE, MAX_BATCH, MODEL_FILE, SIGNATURE_FILE, serve_config
from .onnx import OnnxExporter

SERVERS = Path(__file__).resolve().parents[1] / "servers"


class RayServeExporter(OnnxExporter):
    name: ClassVar[str] = "ray-serve"
    format: ClassVar[str] = "rayserve"
    suffix: ClassVar[str] = "-rayserve"
    is_directory: ClassVar[bool] = True
    precisions: ClassVar[dict[str, str | None]] = {"fp32": None}
    runner: ClassVar[str | None] = "ray-serve"
    distributions: ClassVar[tuple[str, ...]] = ("torch", "onnx", "onnxscript", "tf2onnx", "onnxruntime", "ray")

    def finish(self, onnx_path: Path, dest: Path) -> JsonObject:
        import onnx

        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(onnx_path, dest / MODEL_FILE)
        shutil.copyfile(SERVERS / "ray_app.py", dest / APP_FILE)   # shipped as it is; imports Ray only there
        graph = onnx.load(str(onnx_path), load_external_data=False).graph
        initializers = {i.name for i in graph.initializer}
        inputs = [i for i in graph.input if i.name not in initializers]
        shapes = [[d.dim_value if d.HasField("dim_value") else (d.dim_param or "dim")
                   for d in i.type.tensor_type.shape.dim] for i in inputs]
        dynamic = all(shape and not isinstance(shape[0], int) for shape in shapes)
        signature = {"inputs": [{"name": i.name, "shape": shape,
                                 "dtype": onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type).name}
                                for i, shape in zip(inputs, shapes)],
                     "outputs": [o.name for o in graph.output], "batch": "dynamic" if dynamic else "static"}
        (dest / SIGNATURE_FILE).write_text(json.dumps(signature, indent=1) + "\n")
        (dest / CONFIG_FILE).write_text(serve_config())
        return {"application": APP_FILE, "config": CONFIG_FILE, "runtime": "ONNX Runtime (CPU)",
                "batching": f"@serve.batch up to {MAX_BATCH} requests" if dynamic else
                            "requests run one by one (the ONNX model's batch dimension is fixed)"}
