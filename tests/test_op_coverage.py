"""Op coverage before and after conversion, asked of each runtime's own tooling: a model with an op XNNPACK has
no kernel for (cumsum, in layer `head`) still builds, and the report names the op and the layer."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run_cli

pytestmark = pytest.mark.slow

MODULE = '''
import numpy as np
import torch
from torch import nn


class Head(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, 1)       # ExecuTorch runs it on a portable kernel: XNNPACK has none


class CumsumNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)
        self.head = Head()

    def forward(self, x):
        return self.head(self.fc(torch.relu(self.conv(x)).flatten(1)))


def make_model():
    torch.manual_seed(0)
    return CumsumNet().eval()


def example_inputs():
    return np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32)
'''


def test_coverage_names_the_op_and_layer_before_and_after(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "cumsummodel.py").write_text(MODULE)
    (tmp_path / "edgepipe.toml").write_text('model = "cumsummodel:make_model"\n'
                                             'example-inputs = "cumsummodel:example_inputs"\n'
                                             '[targets.android]\nformats = ["pte:fp32", "tflite:fp32", "onnx:fp32"]\n')
    proc = run_cli("build", "--out", str(tmp_path / "out"), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout[proc.stdout.index("{"):])
    arts = {a["format"]: a for a in report["artifacts"]}
    assert all(a["status"] == "ok" for a in arts.values())
    pte = {c["stage"]: c for c in arts["pte"]["op_coverage"]}
    for stage in ("before", "after"):
        assert pte[stage]["runtime"] == "XNNPACK delegate (ExecuTorch)"
        (row,) = pte[stage]["unsupported"]
        assert row["op"] == "aten.cumsum.default" and row["layers"] == ["head"]
    assert any("pte:fp32" in w and "aten.cumsum.default (layer head)" in w for w in report["warnings"])
    # exported for batches of 4, which the one-sample demo app cannot feed: a warning, the artifacts stand
    assert any(w.startswith("no 'android' bundle: ") and "[4, 1, 8, 8]" in w for w in report["warnings"])
    tflite = {c["stage"]: c for c in arts["tflite"]["op_coverage"]}
    # LiteRT has CUMSUM
    assert tflite["before"]["unsupported_nodes"] == 0 and tflite["after"]["unsupported_nodes"] == 0
    onnx = {c["runtime"]: c for c in arts["onnx"]["op_coverage"]}
    assert {"NNAPI EP (Android)", "Core ML EP (iOS)"} <= set(onnx) and onnx["NNAPI EP (Android)"]["nodes"] >= 4
    assert any(u["op"] == "ai.onnx:CumSum" for c in onnx.values() for u in c["unsupported"])
    markdown = (tmp_path / "out" / "android" / "report.md").read_text()
    assert "### Op coverage" in markdown and "aten.cumsum.default x1 (head)" in markdown
