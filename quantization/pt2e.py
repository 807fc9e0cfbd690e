"""The shared PT2E mechanism: capture, insert observers, calibrate, convert. Backends pick the quantizer."""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from edge_pipeline.errors import Unsupported
from edge_pipeline.host import package_version
from edge_pipeline.plugins import DataBundle, Model

from .calibration import calibrate, calibration_batches

ADAROUND = "adaround"   # weight rounding + bias correction under quantized inputs (adaround.py)

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
                    captured: fx.GraphModule | None = None, algorithms: tuple[str, ...] = (),
                    method: str = "histogram") -> Model:
    """`captured`: a graph from capture_for_quantization to reuse (copied, never modified). With `algorithms`
    (or a range estimator torchao has no observer for), NNCF runs the calibration (nncf_ptq.py)."""
    import copy

    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from .nncf_ptq import ALGORITHMS as NNCF_ALGORITHMS

    captured = captured if captured is not None else capture_for_quantization(model)
    seen = len(data.calibration) // data.batch * data.batch
    nncf = tuple(a for a in algorithms if a in NNCF_ALGORITHMS)
    rounding: dict[str, object] = {}
    if nncf and ADAROUND in algorithms:
        raise Unsupported(f"'{ADAROUND}' runs on torchao's calibration, not with NNCF's {', '.join(nncf)}: "
                          "choose one of them in [quantization] algorithms")
    if nncf or method == "percentile":
        from .nncf_ptq import nncf_quantize

        converted = nncf_quantize(captured, quantizer, data.calibration, data.batch, nncf, method, fold_quantize)
        engine = f"nncf {package_version('nncf')} quantize_pt2e"
    else:
        prepared = prepare_pt2e(copy.deepcopy(captured), quantizer)
        seen = calibrate(prepared, data.calibration, batch=data.batch)
        if ADAROUND in algorithms:
            from .adaround import adaround

            rounding = adaround(prepared, calibration_batches(data.calibration, data.batch)).as_dict()
        converted = convert_pt2e(prepared, fold_quantize=fold_quantize)
        engine = f"torchao {package_version('torchao')} prepare_pt2e / convert_pt2e"
    return replace(model, module=converted).with_provenance(
        quantization={"scheme": "pt2e static int8, per-channel weights", "calibration_samples": seen,
                      "engine": engine, "algorithms": list(algorithms), **({"rounding": rounding} if rounding else {})})


def _first(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [repr(exc)])[0][:300]
