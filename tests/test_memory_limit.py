"""Memory under an emulated device profile: what loading and running a model adds, against `memory-mb`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_pipeline.measure.memory import MemoryLimitExceeded, RssSampler, check_memory_limit

from .conftest import run_cli


def test_sampler_sees_an_allocation_and_the_limit_names_the_profile() -> None:
    with RssSampler() as sampler:
        block = np.ones(64 * 1024 * 1024 // 8)      # 64 MiB, touched
        block.sum()
    assert 60 <= sampler.added_mb <= 80
    check_memory_limit("model.pte", "android (host-emulated)", sampler.added_mb, 128)
    with pytest.raises(MemoryLimitExceeded,
                       match=r"over the android \(host-emulated\) profile's memory limit of 32 MiB"):
        check_memory_limit("model.pte", "android (host-emulated)", sampler.added_mb, 32)


@pytest.mark.slow
def test_a_profile_memory_limit_fails_artifacts_that_need_more(android_build: dict, tmp_path: Path) -> None:
    report = android_build["report"]
    for art in report["artifacts"]:
        assert 0 < art["runtime_memory_mb"] < 512      # within the android profile's default budget
    (tmp_path / "edgepipe.toml").write_text("[targets.android.profile]\nmemory-mb = 0.5\n")
    proc = run_cli("build", "--out", str(tmp_path / "out"), "--json", cwd=tmp_path)
    assert proc.returncode == 4, proc.stderr[-2000:]
    tight = json.loads(proc.stdout[proc.stdout.index("{"):])
    for art in tight["artifacts"]:
        assert art["status"] == "failed" and art["error"]["type"] == "MemoryLimitExceeded"
        assert "memory limit of 0.5 MiB" in art["error"]["message"]


def test_memory_limit_must_be_positive(tmp_path: Path) -> None:
    (tmp_path / "edgepipe.toml").write_text("[profile]\nmemory-mb = 0\n")
    proc = run_cli("targets", cwd=tmp_path)
    assert proc.returncode == 2 and "'profile.memory-mb' must be > 0, got 0" in proc.stderr
