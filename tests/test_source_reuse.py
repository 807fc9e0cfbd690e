"""An unchanged rebuild skips the source stage; any change to what it read (weights, the user's module) or
`--no-cache` runs it again."""
from __future__ import annotations

import pytest

from .test_user_models import DATA, build, make_module

pytestmark = pytest.mark.slow


def test_source_stage_reruns_exactly_when_what_it_read_changes(user_project, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    project = user_project(f"""
model = "usermodels:make_model"
weights = "tiny.pt"
{DATA}
[targets.android]
formats = ["onnx:fp32"]
""")
    model = make_module(project).make_model()
    torch.save(model.state_dict(), project / "tiny.pt")

    def source() -> dict:
        result, report = build(project, monkeypatch)
        assert result.exit_code == 0, result.output
        return report["source"]

    first = source()
    assert first["cached"] is False
    again = source()
    assert again["cached"] is True and again["fingerprint"] == first["fingerprint"]

    with torch.no_grad():
        model.fc.bias.add_(0.5)
    torch.save(model.state_dict(), project / "tiny.pt")     # same size, new weights
    retrained = source()
    assert retrained["cached"] is False and retrained["fingerprint"] != first["fingerprint"]

    module = project / "usermodels.py"
    module.write_text(module.read_text() + "\n# edited\n")  # the factory's module: it may build another model
    edited = source()
    assert edited["cached"] is False and edited["fingerprint"] == retrained["fingerprint"]
    assert source()["cached"] is True

    result, report = build(project, monkeypatch, "--no-cache")
    assert result.exit_code == 0 and report["source"]["cached"] is False
