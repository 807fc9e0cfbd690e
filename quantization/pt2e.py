"""The shared PT2E mechanism: capture, insert observers, calibrate, convert. Backends pick the quantizer."""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from edge_pipeline.errors import Unsupported
from edge_pipeline.plugins import DataBundle, Model

from .calibration import calibrate

if TYPE_CHECKING:
    from torch import fx
    from torchao.quantization.pt2e.quantizer import Quantizer


def capture_for_quantization(model: Model) -> fx.GraphModule:
    import torch

    try:
        return torch.export.export(model.module, model.example_inputs).module()
    except Exception as exc:
        raise Unsupported(f"torch.export could not capture the model for quantization: {_first(exc)}") from exc


def quantize_static(model: Model, quantizer: Quantizer, data: DataBundle, fold_quantize: bool,
                    captured: fx.GraphModule | None = None) -> Model:
    """`captured`: a graph from capture_for_quantization to reuse (copied, never modified)."""
    import copy

    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    captured = copy.deepcopy(captured) if captured is not None else capture_for_quantization(model)
    prepared = prepare_pt2e(captured, quantizer)
    seen = calibrate(prepared, data.calibration, batch=data.batch)
    converted = convert_pt2e(prepared, fold_quantize=fold_quantize)
    return replace(model, module=converted).with_provenance(
        quantization={"scheme": "pt2e static int8, per-channel weights", "calibration_samples": seen})


def _first(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [repr(exc)])[0][:300]
