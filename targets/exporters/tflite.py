"""LiteRT `.tflite` from PyTorch with litert-torch; int8 comes from the litert-int8 transform's quantizer."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from edge_pipeline.plugins import Exporter, Model
from edge_pipeline.types import JsonObject

from ..coverage import litert_torch_before, tflite_after
from .converter_configs import LitertQuantConfig
from .torch_capture import as_unsupported, capture, with_preflight


class TfliteExporter(Exporter):
    name: ClassVar[str] = "tflite"
    format: ClassVar[str] = "tflite"
    suffix: ClassVar[str] = ".tflite"
    frameworks: ClassVar[tuple[str, ...]] = ("torch",)
    precisions: ClassVar[dict[str, str | None]] = {"fp32": None, "int8": "litert-int8",
                                                    "int8-dynamic": "litert-dynamic-int8",
                                                    "int8-weight": "litert-weight-int8",
                                                    "int16x8": "litert-16x8", "int8-mixed": "litert-mixed"}
    runner: ClassVar[str | None] = "litert"
    distributions: ClassVar[tuple[str, ...]] = ("torch", "litert-torch", "ai-edge-litert", "torchao")

    def export(self, model: Model, dest: Path) -> JsonObject:
        import litert_torch

        config = model.config(LitertQuantConfig)
        quant_config = config.quant_config if config is not None else None
        before = litert_torch_before(capture(model))
        try:
            converted = litert_torch.convert(model.module, model.example_inputs, quant_config=quant_config)
            converted.export(str(dest))
        except Exception as exc:
            raise with_preflight(as_unsupported("litert-torch conversion failed", exc), before) from exc
        return {"converter": "litert-torch", "layout": "NCHW (as the PyTorch source)",
                "quantizer": "litert-torch PT2EQuantizer" if quant_config else None,
                "op_coverage": [before.to_json(), tflite_after(dest)]}
