"""Core ML `.mlpackage` (ML program) from a `torch.export` program, with coremltools.

Core ML runs only on Apple platforms: coremltools converts on Linux, but `predict` raises there, so the
artifact cannot be compared with its source on this host. It is reported `unvalidated` with that reason, never
as passing, and is not bundled. What can be checked here is checked: the saved package loads back (without the
Core ML framework) with the source's input and output shapes.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections import Counter
from pathlib import Path
from typing import ClassVar

from edge_pipeline.errors import StageFailed
from edge_pipeline.fsutil import sha256_file
from edge_pipeline.plugins import Exporter, Model
from edge_pipeline.types import JsonObject

from .converter_configs import CoremlPrecisionConfig
from .torch_capture import as_unsupported, capture

UNVALIDATED = ("Core ML runs only on Apple platforms: coremltools converts on Linux but cannot run the model "
               "here, so its outputs were never compared with the source")


class CoremlExporter(Exporter):
    name: ClassVar[str] = "coreml"
    format: ClassVar[str] = "coreml"
    suffix: ClassVar[str] = ".mlpackage"
    frameworks: ClassVar[tuple[str, ...]] = ("torch",)
    precisions: ClassVar[dict[str, str | None]] = {"fp32": None, "fp16": "coreml-fp16"}
    runner: ClassVar[str | None] = None
    unvalidated_reason: ClassVar[str] = UNVALIDATED
    is_directory: ClassVar[bool] = True
    distributions: ClassVar[tuple[str, ...]] = ("torch", "coremltools")

    def export(self, model: Model, dest: Path) -> JsonObject:
        import coremltools as ct

        program = capture(model).run_decompositions({})
        config = model.config(CoremlPrecisionConfig)
        fp16 = config is not None and config.precision == "fp16"
        try:
            converted = ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                                   compute_precision=ct.precision.FLOAT16 if fp16 else ct.precision.FLOAT32)
        except Exception as exc:
            raise as_unsupported("coremltools could not convert the model", exc) from exc
        with tempfile.TemporaryDirectory(prefix="edgepipe-coreml-") as tmp:
            package = Path(tmp) / "model.mlpackage"
            converted.save(str(package))
            for item in package.iterdir():
                shutil.move(str(item), dest / item.name)
        _stable_manifest(dest)
        spec = ct.models.MLModel(str(dest), skip_model_load=True).get_spec()
        shapes = {"inputs": {i.name: list(i.type.multiArrayType.shape) for i in spec.description.input},
                  "outputs": {o.name: list(o.type.multiArrayType.shape) for o in spec.description.output}}
        expected = [list(t.shape) for t in model.example_inputs]
        if list(shapes["inputs"].values()) != expected:
            raise StageFailed(f"the saved Core ML model takes {shapes['inputs']}, the source takes {expected}")
        ops = Counter(op.type for f in spec.mlProgram.functions.values()
                      for block in f.block_specializations.values() for op in block.operations)
        return {"compute_precision": "fp16" if fp16 else "fp32", "deployment_target": "iOS17", **shapes,
                "mil_ops": dict(sorted(ops.items())), "validated": False, "unvalidated_reason": UNVALIDATED}


def _stable_manifest(package: Path) -> None:
    """coremltools names package items with random UUIDs; name them after their content so that the same
    model gives the same bytes."""
    manifest_path = package / "Manifest.json"
    manifest = json.loads(manifest_path.read_text())
    renamed = {}
    for old_id, entry in manifest["itemInfoEntries"].items():
        item = package / "Data" / entry["path"]
        if item.is_file():
            digest = sha256_file(item)
        else:
            digest = "".join(sorted(sha256_file(f) for f in item.rglob("*") if f.is_file()))
        renamed[old_id] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"edgepipe:{entry['path']}:{digest}")).upper()
    manifest["itemInfoEntries"] = {renamed[k]: v for k, v in sorted(manifest["itemInfoEntries"].items(),
                                                                     key=lambda kv: renamed[kv[0]])}
    manifest["rootModelIdentifier"] = renamed[manifest["rootModelIdentifier"]]
    manifest_path.write_text(json.dumps(manifest, indent=4) + "\n")
