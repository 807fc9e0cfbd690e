"""Per-layer int8 sensitivity in the report, and accuracy-budgeted fallback on a deliberately fragile model:
the trained digits CNN with one hidden unit scaled x1000 (and the next layer's weights / 1000), so the float
function is unchanged but that activation's outlier ruins per-tensor int8 for its neighbours."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run_cli

pytestmark = pytest.mark.slow

MODULE = '''
import torch
from edge_pipeline.examples.digits_data import load_digits_split
from edge_pipeline.examples.torch_digits import load


def fragile():
    model = load()[0].module
    with torch.no_grad():
        model.classifier[1].weight[0] *= 1000.0     # relu(1000 z) = 1000 relu(z): same function in float
        model.classifier[1].bias[0] *= 1000.0
        model.classifier[3].weight[:, 0] /= 1000.0
    return model


def example():
    return load_digits_split().eval_x[:1]


def calibration():
    return [load_digits_split().calib_x]


def evaluate():
    split = load_digits_split()
    return [(split.eval_x, split.eval_y)]
'''
CONFIG = '''model = "fragile:fragile"
example-inputs = "fragile:example"
calibration = "fragile:calibration"
evaluate = "fragile:evaluate"
[targets.android]
formats = ["pte:int8"]
'''


def build(tmp_path: Path, *flags: str) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "fragile.py").write_text(MODULE)
    (tmp_path / "edgepipe.toml").write_text(CONFIG)
    proc = run_cli("build", "--out", str(tmp_path / "out"), "--json", *flags, cwd=tmp_path)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    return {"code": proc.returncode, "report": json.loads(proc.stdout[proc.stdout.index("{"):])}


def test_fallback_recovers_a_fragile_model_within_budget(cache_dir: Path, tmp_path: Path) -> None:
    plain = build(tmp_path / "plain")
    (art,) = plain["report"]["artifacts"]
    assert art["accuracy_drop"] > 1.0, art["accuracy_drop"]          # plain int8 really loses accuracy...
    assert plain["code"] == 4 and art["error"]["type"] == "ValidationMismatch"   # ...and validation refuses it
    ranking = [row["layer"] for row in art["sensitivity"]["layers"]]
    assert set(ranking) == {"features.0", "features.2", "classifier.1", "classifier.3"}
    assert set(ranking[:2]) == {"classifier.1", "classifier.3"}      # the outlier's layers rank first
    assert art["fallback"] is None
    assert "### Per-layer int8 sensitivity: pte:int8" in (tmp_path / "plain" / "out" / "android" / "report.md").read_text()

    budgeted = build(tmp_path / "budget", "--budget", "max-accuracy-drop=1.0")
    assert budgeted["code"] == 0
    (art,) = budgeted["report"]["artifacts"]
    assert art["status"] == "ok" and art["accuracy_drop"] <= 1.0
    fallback = art["fallback"]
    assert fallback["met"] and 1 <= len(fallback["kept_float"]) <= 2
    assert set(fallback["kept_float"]) <= {"classifier.1", "classifier.3"}
    assert fallback["steps"][0]["drop_pts"] > 1.0 and fallback["steps"][-1]["drop_pts"] <= 1.0
