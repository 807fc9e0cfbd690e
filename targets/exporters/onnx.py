"""ONNX (`.onnx`) and ONNX Runtime's mobile format (`.ort`). Both start from the same ONNX export; ORT
quantization (static QDQ, dynamic) runs on that ONNX file before `finish` turns it into the artifact (the plugin
API's OnnxExporter route, imported here as OnnxBasedExporter: this module's class keeps its entry-point name)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import ClassVar

from edge_pipeline.errors import StageFailed
from edge_pipeline.plugins import Model
from edge_pipeline.plugins import OnnxExporter as OnnxBasedExporter
from edge_pipeline.types import JsonObject

from ..coverage import onnx_after

_PRECISIONS: dict[str, str | None] = {"fp32": None, "int8": "ort-static-int8", "int8-dynamic": "ort-dynamic-int8"}


class OnnxExporter(OnnxBasedExporter):
    name: ClassVar[str] = "onnx"
    format: ClassVar[str] = "onnx"
    suffix: ClassVar[str] = ".onnx"
    frameworks: ClassVar[tuple[str, ...]] = ("torch", "tensorflow", "onnx")
    precisions: ClassVar[dict[str, str | None]] = _PRECISIONS
    runner: ClassVar[str | None] = "onnxruntime"
    distributions: ClassVar[tuple[str, ...]] = ("torch", "onnx", "onnxscript", "tf2onnx", "onnxruntime")

    def to_onnx(self, model: Model, onnx_path: Path) -> None:
        """The source model as ONNX (torch.onnx, tf2onnx, or the ONNX source file itself)."""
        from .onnx_export import to_onnx

        to_onnx(model, onnx_path)

    def finish(self, onnx_path: Path, dest: Path) -> JsonObject:
        """Turns the (possibly quantized) ONNX file into the artifact at `dest`; returns its metadata."""
        shutil.copyfile(onnx_path, dest)
        return {"opset": _opset(dest), "op_coverage": onnx_after(onnx_path)}


class OrtExporter(OnnxExporter):
    """`.ort` converted for this host's platform: the default conversion runs about 2x slower here."""

    name: ClassVar[str] = "ort"
    format: ClassVar[str] = "ort"
    suffix: ClassVar[str] = ".ort"

    def finish(self, onnx_path: Path, dest: Path) -> JsonObject:
        platform = "arm" if _machine().startswith(("arm", "aarch")) else "amd64"
        with tempfile.TemporaryDirectory() as tmp:
            staged = Path(tmp) / "model.onnx"
            shutil.copyfile(onnx_path, staged)
            proc = subprocess.run([sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(staged),
                                   "--optimization_style", "Fixed", "--target_platform", platform],
                                  capture_output=True, text=True)
            produced = Path(tmp) / "model.ort"
            if proc.returncode != 0 or not produced.is_file():
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
                raise StageFailed(f"ORT format conversion failed: {tail[0] if tail else 'no output'}")
            shutil.copyfile(produced, dest)
        return {"target_platform": platform, "optimization_style": "Fixed", "op_coverage": onnx_after(onnx_path)}


def _opset(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _machine() -> str:
    import platform

    return platform.machine().lower()
