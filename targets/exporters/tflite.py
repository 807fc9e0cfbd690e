"""LiteRT `.tflite` from PyTorch with litert-torch; int8 comes from the litert-int8 transform's quantizer."""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from edge_pipeline.plugins import ExporterBase, Model

from ..coverage import litert_torch_before, tflite_after
from .torch_capture import as_unsupported, capture, with_preflight


class TfliteExporter(ExporterBase):
    name: ClassVar[str] = "tflite"
    format: ClassVar[str] = "tflite"
    suffix: ClassVar[str] = ".tflite"
    frameworks: ClassVar[tuple[str, ...]] = ("torch",)
    precisions: ClassVar[dict[str, str | None]] = {"fp32": None, "int8": "litert-int8",
                                                    "int8-dynamic": "litert-dynamic-int8",
                                                    "int8-weight": "litert-weight-int8",
                                                    "int16x8": "litert-16x8"}
    runner: ClassVar[str] = "litert"
    distributions: ClassVar[tuple[str, ...]] = ("torch", "litert-torch", "ai-edge-litert", "torchao")

    def export(self, model: Model, dest: Path) -> dict[str, Any]:
        import litert_torch

        quant_config = model.converter.litert_quant_config
        before = litert_torch_before(capture(model))
        try:
            converted = litert_torch.convert(model.module, model.example_inputs, quant_config=quant_config)
            converted.export(str(dest))
        except Exception as exc:
            raise with_preflight(as_unsupported("litert-torch conversion failed", exc), before) from exc
        return {"converter": "litert-torch", "layout": "NCHW (as the PyTorch source)",
                "quantizer": "litert-torch PT2EQuantizer" if quant_config else None,
                "op_coverage": [before, tflite_after(dest)]}
