"""GPTQ rounding on torchao's own int4 grid (quantization/gptq.py): same scales, other integers, and a layer whose
output moves less than nearest rounding moves it, on inputs with the correlations real activations have."""
from __future__ import annotations

import pytest
import torch

from quantization.gptq import gptq_round, input_hessians

GROUP = 32


def grid(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int4 scales per group of 32 (torchao's min-max choice), zero points 0."""
    groups = weight.reshape(weight.shape[0], -1, GROUP)
    scale = groups.abs().amax(dim=-1) / 7.5
    return scale, torch.zeros_like(scale)


def dequantized(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return (q.double().reshape(q.shape[0], -1, GROUP) * scale.double()[..., None]).reshape(q.shape)


def test_gptq_moves_a_layers_output_less_than_nearest_rounding_on_the_same_grid() -> None:
    torch.manual_seed(0)
    mixing = torch.randn(128, 128) * torch.linspace(0.05, 2.0, 128)     # correlated inputs, uneven scales
    x = torch.randn(4096, 128) @ mixing
    weight = torch.randn(64, 128)
    scale, zero = grid(weight)
    hessian = (x.double().T @ x.double()) / len(x)
    q = gptq_round(weight, hessian, scale, zero, GROUP, -8, 7)
    nearest = torch.clamp(torch.round(weight.reshape(64, -1, GROUP) / scale[..., None]), -8, 7).reshape(64, 128)
    assert q.dtype == torch.int8 and int(q.min()) >= -8 and int(q.max()) <= 7
    assert not torch.equal(q, nearest.to(torch.int8))
    exact = x.double() @ weight.double().T
    gptq_error = (x.double() @ dequantized(q, scale).T - exact).pow(2).mean()
    nearest_error = (x.double() @ dequantized(nearest, scale).T - exact).pow(2).mean()
    assert gptq_error < 0.85 * nearest_error, (float(gptq_error), float(nearest_error))


def test_input_hessians_are_taken_over_what_each_layer_sees() -> None:
    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(10, 32)
            self.proj = torch.nn.Linear(32, 32)

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            return self.proj(self.embed(input_ids))

    model = Tiny()
    windows = [torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6, 7])]
    (name, hessian), = input_hessians(model, ["proj"], windows).items()
    seen = model.embed(torch.tensor([1, 2, 3, 4, 5, 6, 7])).double()
    assert name == "proj" and torch.allclose(hessian, seen.T @ seen / 7)
    with pytest.raises(KeyError):
        input_hessians(model, ["missing"], windows)
