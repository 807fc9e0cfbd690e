"""numpy in, numpy out for the runtimes that speak torch tensors (ExecuTorch, lite interpreter)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


class TorchTensorSession:
    def __init__(self, call: Callable[[list[Any]], Any]):
        self._call = call

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        outputs = self._call([torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
        if isinstance(outputs, torch.Tensor):
            outputs = [outputs]
        return [o.detach().numpy() for o in outputs]
