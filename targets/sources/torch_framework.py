"""PyTorch specifics of the source stage: weights fingerprint, sizes, eager reference outputs."""
from __future__ import annotations

import hashlib
from typing import Any

import torch

from edge_pipeline.plugins import DataBundle, Model
from edge_pipeline.tensors import Tensors, collect_outputs, flatten_outputs


def fingerprint(model: Model) -> str:
    """Hash of every parameter and buffer (name, dtype, shape, bytes) plus the module's class."""
    digest = hashlib.sha256(type(model.module).__qualname__.encode())
    for name, tensor in sorted(model.module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def count_params(model: Model) -> int:
    return int(sum(p.numel() for p in model.module.parameters()))


def weights_bytes(model: Model) -> int:
    return int(sum(t.numel() * t.element_size() for t in model.module.state_dict().values()))


def reference_outputs(model: Model, data: DataBundle) -> Tensors:
    def call(batch: Tensors) -> list[tuple[str, Any]]:
        with torch.no_grad():
            return flatten_outputs(model.module(*(torch.from_numpy(a.copy()) for a in batch)))
    return collect_outputs(call, data.eval_inputs, data.batch)
