"""numpy in, numpy out for the runtimes that speak torch tensors (ExecuTorch, lite interpreter)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


class TorchTensorSession:
    def __init__(self, call: Callable[[list[Any]], Any], input_shapes: list[list[int]] | None = None):
        self._call = call
        self.input_shapes = input_shapes   # None: the runtime does not say; profiling then needs --inputs

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        outputs = self._call([torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
        if isinstance(outputs, torch.Tensor):
            outputs = [outputs]
        return [o.detach().numpy() for o in outputs]
