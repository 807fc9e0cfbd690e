"""A user's own PyTorch model from edgepipe.toml: factories, weights, .pt2 files, data, and bad input."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_pipeline.cli import app

runner = CliRunner()
DATA = """
example-inputs = "usermodels:example_inputs"
calibration = "usermodels:calibration"
evaluate = "usermodels:evaluate"
"""


def build(project: Path, monkeypatch: pytest.MonkeyPatch, *extra: str):
    monkeypatch.chdir(project)
    result = runner.invoke(app, ["build", "--out", str(project / "out"), "--json", *extra])
    lines = result.stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("{")), None)
    payload = json.loads("\n".join(lines[start:])) if start is not None else None   # the --json document
    return result, payload


def make_module(project: Path):
    sys.path.insert(0, str(project))
    try:
        import importlib

        import usermodels
        return importlib.reload(usermodels)
    finally:
        sys.path.remove(str(project))


@pytest.mark.slow
def test_factory_with_weights_builds_and_validates(user_project, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    project = user_project(f"""
model = "usermodels:make_model"
weights = "tiny.pt"
{DATA}
[targets.android]
formats = ["tflite:fp32", "pte:int8"]
""")
    trained = make_module(project).make_model()
    with torch.no_grad():
        trained.fc.bias.add_(0.5)          # weights differ from the factory's own init
    torch.save(trained.state_dict(), project / "tiny.pt")
    result, report = build(project, monkeypatch)
    assert result.exit_code == 0, result.output
    assert report["source"]["params"] == 8 * 9 + 8 + 2 * 8 + 512 * 10 + 10
    assert report["source"]["provenance"]["weights"].endswith("tiny.pt")
    assert report["source"]["eval_samples"] == 64 and report["source"]["calibration_samples"] == 32
    assert [a["status"] for a in report["artifacts"]] == ["ok", "ok"]
    assert report["artifacts"][0]["max_abs_diff"] < 1e-3


@pytest.mark.slow
def test_torch_export_pt2_file_is_a_source(user_project, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    project = user_project(f"""
model = "tiny.pt2"
{DATA}
[targets.android]
formats = ["pte:fp32"]
""")
    module = make_module(project)
    torch.export.save(torch.export.export(module.make_model().eval(), (module.example_inputs(),)), project / "tiny.pt2")
    result, report = build(project, monkeypatch)
    assert result.exit_code == 0, result.output
    assert report["source"]["provenance"]["kind"] == "pt2" and report["artifacts"][0]["status"] == "ok"


@pytest.mark.slow
def test_validation_mismatch_fails_the_artifact_with_exit_4(user_project, monkeypatch: pytest.MonkeyPatch) -> None:
    """Logits of 1000 + tiny signal: the int8 .pte is really built but loses the prediction; it must not ship."""
    project = user_project(f"""
model = "usermodels:make_huge_bias"
{DATA}
[targets.android]
formats = ["pte:int8"]
""")
    result, report = build(project, monkeypatch)
    assert result.exit_code == 4, result.output
    (artifact,) = report["artifacts"]
    assert artifact["status"] == "failed" and artifact["error"]["stage"] == "validate"
    assert "disagrees with the float source" in artifact["error"]["message"]
    assert "agreement" in artifact["error"]["message"] and artifact["agreement"] < 0.95
    assert not list((project / "out" / "android").glob("*.pte")) and artifact["path"] is None


BAD_INPUTS = [
    ("model = 'missing.pt2'\nexample-inputs = [1, 1, 8, 8]", "model file not found"),
    ("model = 'usermodels:broken_factory'\nexample-inputs = [1, 1, 8, 8]",
     "raised ValueError: cannot build this model"),
    ("model = 'usermodels:no_such_factory'\nexample-inputs = [1, 1, 8, 8]", "has no attribute 'no_such_factory'"),
    ("model = 'nosuchpkg.models:make'\nexample-inputs = [1, 1, 8, 8]", "module 'nosuchpkg' not found"),
    ("model = 'usermodels:make_model'\nexample-inputs = [1, 3, 8, 8]",
     "does not accept example inputs of shape [1, 3, 8, 8]"),
    ("model = 'usermodels:make_model'", "'example-inputs' is required"),
    ("model = 'usermodels:make_model'\nexample-inputs = [1, 1, 8, 8]\n[targets.android]\nformats = ['tflite:int8']",
     "missing calibration data: 'tflite:int8'"),
    ("model = 'usermodels:make_model'\nexample-inputs = [1, 1, 8, 8]\ncalibration = 'usermodels:calibration_rgb'",
     "calibration inputs have sample shape [3, 8, 8], but example inputs have [1, 8, 8]"),
]


def test_web_target_refuses_an_input_rank_it_cannot_handle(user_project, monkeypatch: pytest.MonkeyPatch) -> None:
    project = user_project("model = 'usermodels:make_video'\nexample-inputs = [1, 1, 4, 8, 8]\n")
    result, payload = build(project, monkeypatch, "--target", "web")
    assert result.exit_code == 2 and "handles inputs of rank <= 4" in payload["error"]["message"]
    assert "[1, 1, 4, 8, 8]" in payload["error"]["message"] and not (project / "out" / "web").exists()


@pytest.mark.parametrize("toml,message", BAD_INPUTS, ids=[m[:30] for _, m in BAD_INPUTS])
def test_bad_input_is_one_clear_line_with_exit_2(user_project, monkeypatch, toml: str, message: str) -> None:
    project = user_project(toml)
    result, payload = build(project, monkeypatch)
    assert result.exit_code == 2, result.output
    assert message in payload["error"]["message"]
    assert not (project / "out" / "android").exists()


def test_weights_needing_pickle_are_refused(user_project, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    project = user_project("model = 'usermodels:make_model'\nweights = 'evil.pt'\nexample-inputs = [1, 1, 8, 8]\n")
    torch.save({"fc.weight": torch.zeros(1), "extra": Path("not-a-tensor")}, project / "evil.pt")
    result, payload = build(project, monkeypatch)
    assert result.exit_code == 2 and "weights_only=True" in payload["error"]["message"]


def test_corrupt_weights_are_refused(user_project, monkeypatch: pytest.MonkeyPatch) -> None:
    project = user_project("model = 'usermodels:make_model'\nweights = 'corrupt.pt'\nexample-inputs = [1, 1, 8, 8]\n")
    (project / "corrupt.pt").write_bytes(b"\x00garbage" * 100)
    result, payload = build(project, monkeypatch)
    assert result.exit_code == 2 and "is corrupt or not a torch file" in payload["error"]["message"]
