"""GPTQ-style rounding (Frantar et al., 2022) of int4 weights onto a grid torchao already chose.

torchao quantizes each linear layer's weight in groups (its scale and zero point per group, min-max or HQQ); GPTQ
then picks the integers column by column, each column's rounding error spread over the columns not yet rounded,
weighted by the inverse Hessian of the layer's inputs (X^T X over calibration text), so the layer's output moves
least. The scales and zero points stay torchao's: the program lowers exactly as before, only the integers differ.

Written here because no installed library offers it for this backend: torchao 0.18's GPTQ (`prototype.gptq`)
quantizes int4 only through `mslk`, a CUDA kernel package that does not install on this CPU host, and targets
int4 weight-only layouts, not 8da4w's."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

DAMPING = 0.01     # of the Hessian's mean diagonal, added to its diagonal (GPTQ's default)


def input_hessians(model: Any, names: Sequence[str], windows: Iterable[Any]) -> dict[str, Any]:
    """X^T X / n of each named Linear layer's inputs over the calibration windows (token ids), float64."""
    import torch

    modules = dict(model.named_modules())
    sums: dict[str, Any] = {}
    counts: dict[str, int] = {}

    def hook(name: str):
        def record(_module: Any, inputs: tuple, _output: Any) -> None:
            x = inputs[0].detach().reshape(-1, inputs[0].shape[-1]).double()
            sums[name] = sums.get(name, 0) + x.T @ x
            counts[name] = counts.get(name, 0) + x.shape[0]
        return record

    handles = [modules[name].register_forward_hook(hook(name)) for name in names]
    try:
        with torch.no_grad():
            for window in windows:
                model(input_ids=torch.as_tensor(window, dtype=torch.long).reshape(1, -1))
    finally:
        for handle in handles:
            handle.remove()
    return {name: sums[name] / counts[name] for name in sums}


def gptq_round(weight: Any, hessian: Any, scale: Any, zero_point: Any, group_size: int, qmin: int,
               qmax: int) -> Any:
    """The integers (int8 storage, in [qmin, qmax]) for `weight` (out x in) on the grid `scale` / `zero_point`
    (out x in/group_size), rounded in column order with GPTQ's error feedback."""
    import torch

    w = weight.detach().double().clone()
    h = hessian.double().clone()
    dead = torch.diag(h) == 0            # inputs never seen: nothing to preserve there
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h += DAMPING * torch.mean(torch.diag(h)) * torch.eye(h.shape[0], dtype=h.dtype)
    inverse = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    scale, zero_point = scale.double(), zero_point.double()
    q = torch.empty_like(w, dtype=torch.int8)
    for column in range(w.shape[1]):
        group = column // group_size
        s, z = scale[:, group], zero_point[:, group]
        integers = torch.clamp(torch.round(w[:, column] / s + z), qmin, qmax)
        q[:, column] = integers.to(torch.int8)
        error = (w[:, column] - (integers - z) * s) / inverse[column, column]
        w[:, column + 1:] -= error[:, None] * inverse[column, column + 1:][None, :]
    return q
