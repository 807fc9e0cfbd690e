"""numpy in, numpy out for the runtimes that speak torch tensors (ExecuTorch, lite interpreter)."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from edge_pipeline.plugins import Session
from edge_pipeline.tensors import TensorSpec, flatten_outputs

if TYPE_CHECKING:
    import torch


class TorchTensorSession(Session):
    """Outputs come back flat, in the order torch.export flattened them (the source's own order)."""

    def __init__(self, call: Callable[[list[torch.Tensor]], object], input_specs: list[TensorSpec] | None = None):
        self._call = call
        self.input_specs = input_specs   # None: the runtime does not say; profiling then needs --inputs

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        outputs = self._call([torch.from_numpy(np.asarray(x, order="C")) for x in inputs])
        return [np.asarray(value.detach().numpy() if isinstance(value, torch.Tensor) else value)
                for _, value in flatten_outputs(outputs)]
