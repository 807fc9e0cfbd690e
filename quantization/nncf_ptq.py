"""NNCF's post-training algorithms on a PT2E graph, with the backend's own quantizer (XNNPACK's, litert-torch's):
bias correction (full or fast), SmoothQuant and NNCF's range estimators, run by `nncf.experimental.torch.fx.
quantize_pt2e` instead of torchao's prepare / calibrate / convert. The quantizer still decides what is quantized
and how (symmetric per-channel int8 weights), so the result lowers exactly like torchao's.

Why NNCF: bias correction removes the shift rounding puts on each layer's output mean (the int8 error that
depthwise convolutions in MobileNet-class networks suffer most), from a maintained library rather than by hand.
Cross-layer equalization and AdaRound are not offered for torch.fx graphs by NNCF (AIMET has them, for its own
simulation graphs only), so they are not here."""
from __future__ import annotations

from typing import TYPE_CHECKING

from edge_pipeline.errors import Unsupported
from edge_pipeline.tensors import Tensors

from .calibration import calibration_batches

if TYPE_CHECKING:
    from torch import fx
    from torchao.quantization.pt2e.quantizer import Quantizer

ALGORITHMS = ("bias-correction", "fast-bias-correction", "smooth-quant")
NNCF_RANGES = ("minmax", "percentile", "histogram")   # histogram: NNCF's default estimator (mean of min / max)


def nncf_quantize(captured: fx.GraphModule, quantizer: Quantizer, calibration: Tensors, batch: int,
                  algorithms: tuple[str, ...], method: str, fold_quantize: bool) -> fx.GraphModule:
    """The converted graph; `captured` is not modified."""
    import logging

    import nncf
    import torch
    from nncf.experimental.torch.fx import quantize_pt2e
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    nncf.set_log_level(logging.ERROR)
    batches = calibration_batches(calibration, batch)
    fast = True if "fast-bias-correction" in algorithms else False if "bias-correction" in algorithms else None
    ranges = {"minmax": RangeEstimatorParametersSet.MINMAX,
              "percentile": RangeEstimatorParametersSet.MEAN_QUANTILE}.get(method)
    try:
        with torch.no_grad():
            return quantize_pt2e(captured, quantizer, nncf.Dataset(batches), subset_size=max(1, len(batches) * batch),
                                 fast_bias_correction=fast, smooth_quant="smooth-quant" in algorithms,
                                 activations_range_estimator_params=ranges, fold_quantize=fold_quantize, do_copy=True)
    except Exception as exc:   # e.g. full bias correction on litert-torch's graphs: TypeError inside NNCF's graph walk
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        raise Unsupported(f"NNCF {' + '.join(algorithms) or method} could not run on this graph "
                          f"({type(exc).__name__}: {detail}); choose other [quantization] algorithms") from exc
