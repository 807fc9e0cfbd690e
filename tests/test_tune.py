"""`edgepipe tune`: an Optuna multi-objective search whose every candidate is a real build, run locally and on a
Ray instance the test starts; the pick meets the budget, the front is non-dominated, the config loads."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from edge_pipeline.config import parse_config

from .conftest import run_cli
from .sshd import free_port

pytestmark = pytest.mark.slow


# The sampler's seed: its first candidates (tflite:fp32, tflite:int8, pte:fp32 pruned 0.75 structured and
# fine-tuned, tflite:fp16) are all distinct, mix pruned and unpruned ones, and the unpruned ones are formats the
# session's android build already converted (its cached stages serve them); every search starts the same way.
SEED = "118"


def tune_json(tmp_path: Path, *flags: str) -> tuple[int, dict, str]:
    proc = run_cli("tune", "--target", "android", "--out", str(tmp_path), "--runs", "10", "--json", "--seed", SEED,
                   *flags, cwd=tmp_path)
    payload = json.loads(proc.stdout[proc.stdout.index("{"):]) if "{" in proc.stdout else {}
    return proc.returncode, payload, proc.stderr


def dominated(a: dict, b: dict) -> bool:
    """b is at least as good as a everywhere and better somewhere (all three objectives minimized)."""
    keys = ("size_kb", "p50_ms", "accuracy_drop")
    return all(b[k] <= a[k] for k in keys) and any(b[k] < a[k] for k in keys)


def test_tune_picks_an_artifact_within_the_accuracy_budget(android_build: dict, tmp_path: Path) -> None:
    code, summary, err = tune_json(tmp_path, "--max-accuracy-drop", "1.0", "--trials", "4")
    assert code == 0, err[-3000:]
    measured = [t for t in summary["trials"] if t["status"] == "ok"]
    assert len(summary["trials"]) == 4 and len(measured) >= 3
    assert len({json.dumps(t["params"], sort_keys=True) for t in summary["trials"]}) == 4   # no candidate built twice
    chosen = summary["chosen"]
    assert chosen["accuracy_drop"] <= 1.0
    assert chosen["size_kb"] == min(t["size_kb"] for t in measured if t["accuracy_drop"] <= 1.0)
    front = summary["pareto_front"]
    assert front and all(not dominated(f, other) for f in front for other in measured)
    folder = tmp_path / "tune" / "android"
    assert (folder / "pareto.md").read_text().startswith("# edgepipe tune: android")
    tuned = folder / "edgepipe.tuned.toml"
    config = parse_config(tomllib.loads(tuned.read_text()), "", tuned)     # a config edgepipe itself accepts
    assert config.targets["android"]["formats"] == [chosen["params"]["output"]]
    assert config.targets["android"]["budgets"] == {"max-accuracy-drop": 1.0}
    assert "host-emulated android profile" in chosen["measured_on"]


def test_no_candidate_meets_an_impossible_budget(android_build: dict, tmp_path: Path) -> None:
    code, summary, _ = tune_json(tmp_path, "--max-size-kb", "1", "--trials", "2")
    assert code == 1 and summary["chosen"] is None
    assert summary["closest"] and all("size KB" in " ".join(c["violations"]) for c in summary["closest"])
    assert not (tmp_path / "tune" / "android" / "edgepipe.tuned.toml").exists()


def test_tune_on_a_local_ray_instance(android_build: dict, tmp_path: Path) -> None:
    ray = Path(sys.executable).with_name("ray")
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    start = subprocess.run([str(ray), "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                            "--disable-usage-stats"], capture_output=True, text=True, env=env, timeout=180)
    assert start.returncode == 0, start.stderr[-2000:]
    try:
        code, summary, err = tune_json(tmp_path, "--executor", "ray", "--address", f"127.0.0.1:{port}",
                                       "--max-accuracy-drop", "1.0", "--trials", "2", "--parallel", "2")
    finally:
        subprocess.run([str(ray), "stop", "--force"], capture_output=True, env=env, timeout=120)
    assert code == 0, err[-3000:]
    assert summary["executor"].startswith(f"Ray at 127.0.0.1:{port}")
    assert len(summary["trials"]) == 2 and all(t["status"] == "ok" for t in summary["trials"])
    assert summary["chosen"]["accuracy_drop"] <= 1.0


def test_tune_json_keeps_its_layout() -> None:
    """Users and scripts read tune.json: the typed records write the keys, in the order, the dicts did."""
    from edge_pipeline.building.tune import Candidate, NearMiss, TrialResult, TuneSummary

    pruned = Candidate("tflite:int8", 0.5, "structured", "pkg.mod:fine_tune")
    ok = TrialResult(1, pruned, "ok", size_kb=10.0, size_compressed_kb=5.0, p50_ms=0.1, accuracy=0.9,
                     accuracy_drop=0.5, params_count=100, measured_on="host", kept_float=("conv1",), report="r.json")
    failed = TrialResult(2, Candidate("onnx:fp32", 0.0), "failed", "boom")
    budgets = {"max-accuracy-drop": 1.0, "max-size-kb": None, "max-latency-ms": None}
    data = TuneSummary("android", budgets, (ok, failed), (ok,), None, (NearMiss(ok, ("size KB 10 > 1",)),),
                       "local worker processes").to_json()
    assert list(data) == ["target", "budgets", "trials", "pareto_front", "chosen", "closest", "executor"]
    assert data["trials"][0] == {
        "params": {"output": "tflite:int8", "prune_amount": 0.5, "prune_kind": "structured",
                   "fine_tune": "pkg.mod:fine_tune"},
        "status": "ok", "size_kb": 10.0, "size_compressed_kb": 5.0, "p50_ms": 0.1, "accuracy": 0.9,
        "accuracy_drop": 0.5, "params_count": 100, "measured_on": "host", "kept_float": ["conv1"],
        "report": "r.json", "trial": 1}
    assert list(data["trials"][0]) == ["params", "status", "size_kb", "size_compressed_kb", "p50_ms", "accuracy",
                                       "accuracy_drop", "params_count", "measured_on", "kept_float", "report", "trial"]
    assert data["trials"][1] == {"params": {"output": "onnx:fp32", "prune_amount": 0.0, "prune_kind": None},
                                 "status": "failed", "error": "boom", "trial": 2}
    assert data["budgets"] == budgets and data["chosen"] is None and data["pareto_front"] == [data["trials"][0]]
    assert data["closest"] == [{**data["trials"][0], "violations": ["size KB 10 > 1"]}]
    assert json.loads(json.dumps(data)) == data


def test_unknown_executor_is_a_usage_error(tmp_path: Path) -> None:
    code, summary, err = tune_json(tmp_path, "--executor", "cloud", "--trials", "1")
    assert code == 2 and "--executor must be 'local' or 'ray'" in err
