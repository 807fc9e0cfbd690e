"""Models that behave badly (issue 19, class 7 and the meta device): what is exported is what was validated.

A factory without a seed builds a new random model on each call. The source stage validates one; every export
worker must export exactly that one (it restores the weights the source stage saved), not a model of its own.
A model or input on torch's meta device (a shape without values) is one line naming it, not a raw error."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from .conftest import run_cli

UNSEEDED = '''
import torch
from torch import nn


def make():                      # no seed: a different random model on every call
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))


def make_keras():
    import keras
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])


def meta_model():
    with torch.device("meta"):
        return nn.Sequential(nn.Linear(4, 3))


def meta_inputs():
    return torch.empty(1, 4, device="meta")

'''


def _project(tmp_path: Path, factory: str, formats: str, inputs: str = "[1, 4]") -> Path:
    (tmp_path / "unseeded.py").write_text(UNSEEDED)
    (tmp_path / "edgepipe.toml").write_text(textwrap.dedent(f"""\
        model = "unseeded:{factory}"
        example-inputs = {inputs}
        [targets.android]
        formats = {formats}
        """))
    return tmp_path


@pytest.mark.parametrize("factory,formats", [("make", "['onnx:fp32', 'pte:fp32']"),
                                              ("make_keras", "['tflite:fp32']")], ids=["torch", "keras"])
def test_an_unseeded_factory_exports_the_model_that_was_validated(factory: str, formats: str, tmp_path: Path,
                                                                  cache_dir: Path) -> None:
    project = _project(tmp_path, factory, formats)
    proc = run_cli("build", "--out", str(tmp_path / "out"), "--json", cwd=project)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    for artifact in report["artifacts"]:
        assert artifact["status"] == "ok", artifact
        sqnr = artifact["validation"]["min_sqnr_db"]
        assert sqnr is None or sqnr > 60, artifact["validation"]   # the same weights, not a new random model


BAD_MODELS = {
    "meta-weights": ("meta_model", "[1, 4]", "is on the 'meta' device"),
    "meta-inputs": ("make", '"unseeded:meta_inputs"', "'meta' device only has a shape"),
}


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
def test_a_model_or_input_without_values_is_one_line_exit_2(case: str, tmp_path: Path, cache_dir: Path) -> None:
    factory, inputs, needle = BAD_MODELS[case]
    project = _project(tmp_path, factory, "['onnx:fp32']", inputs)
    proc = run_cli("build", "--out", str(tmp_path / "out"), cwd=project)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and needle in errors[0] and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "out").exists()
