"""The Fashion-MNIST example's idx reader (the real IDX format, written here) and its missing-package error."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from edge_pipeline.errors import InputError
from targets.examples import fashion_mnist


def test_idx_files_are_read_with_their_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 0x08, 3]) + b"".join(d.to_bytes(4, "big") for d in images.shape)
    (tmp_path / "imgs.gz").write_bytes(gzip.compress(header + images.tobytes()))
    monkeypatch.setattr(fashion_mnist, "DATA_DIR", tmp_path)
    assert np.array_equal(fashion_mnist._idx("imgs.gz"), images)


def test_missing_package_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fashion_mnist, "DATA_DIR", tmp_path / "absent")
    with pytest.raises(InputError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist.load_split()
