"""PyTorch specifics of the source stage: weights fingerprint, sizes, eager reference outputs."""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from ..plugins import DataBundle, Model


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


def reference_outputs(model: Model, data: DataBundle) -> np.ndarray:
    batch = data.example.shape[0]
    usable = (len(data.eval_inputs) // batch) * batch
    outs = []
    with torch.no_grad():
        for i in range(0, usable, batch):
            out = model.module(torch.from_numpy(np.ascontiguousarray(data.eval_inputs[i:i + batch])))
            outs.append(_first(out).detach().cpu().numpy())
    return np.concatenate(outs).astype(np.float32)


def _first(out):
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out
