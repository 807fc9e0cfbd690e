"""A hard-swish written out as `x * hardtanh(x + 3, 0, 6) / 6` (YOLOv5's `Hardswish`, MobileNetV3-class models
that came through ONNX) made litert-torch's int8 conversion fail ("Attempting to broadcast a dimension"); it was
found on PP-OCR's direction classifier. The captured graph now carries one `aten.hardswish` instead, with the same
numbers (the conversion itself is checked on that classifier in test_real_models.py)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edge_pipeline.plugins import DataBundle, Model
from quantization.graph_patterns import fuse_hardswish


class WrittenOutSwish(nn.Module):
    """Three spellings: YOLOv5's, a constant-tensor one (as onnx2torch writes it) and a near miss (x + 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.body = nn.Conv2d(8, 8, 3, padding=1)
        self.tail = nn.Conv2d(8, 8, 1)
        self.head = nn.Linear(8, 4)
        self.register_buffer("three", torch.tensor(3.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x * F.hardtanh(x + 3, 0.0, 6.0) / 6
        x = self.body(x)
        x = x * F.hardtanh(x + self.three, 0.0, 6.0) * (1 / 6)
        x = self.tail(x)
        x = x * F.hardtanh(x + 2, 0.0, 6.0) / 6       # not a hard-swish: left alone
        return self.head(x.mean((2, 3)))


def _model() -> tuple[Model, DataBundle]:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    images = rng.standard_normal((40, 3, 12, 36)).astype(np.float32) * 2
    module = WrittenOutSwish().eval()
    with torch.no_grad():
        labels = module(torch.from_numpy(images)).argmax(1).numpy()
    data = DataBundle.single("x", images[:1], images[:32], images, labels)
    return Model("torch", module, (torch.from_numpy(images[:1]),), {"kind": "factory"}, ("x",)), data


def test_written_out_hardswish_becomes_one_op_with_the_same_numbers() -> None:
    model, data = _model()
    graph = torch.export.export(model.module, model.example_inputs).module()
    samples = [torch.from_numpy(data.eval_inputs.arrays[0][i:i + 1]) for i in range(8)]   # batch 1, as captured
    before = [graph(x) for x in samples]
    assert fuse_hardswish(graph) == 2
    targets = [n.target for n in graph.graph.nodes if n.op == "call_function"]
    assert targets.count(torch.ops.aten.hardswish.default) == 2
    assert targets.count(torch.ops.aten.hardtanh.default) == 1          # the near miss stays as written
    assert all(torch.allclose(graph(x), y, atol=1e-6) for x, y in zip(samples, before))

