"""Shared pieces of the benchmark scripts: run a real `edgepipe build --json`, format numbers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def build(project: Path, cache: Path, *args: str) -> tuple[dict, float]:
    """One build in `project` with its own cache; returns (report, wall seconds)."""
    env = {**os.environ, "EDGEPIPE_CACHE_DIR": str(cache), "PYTHONPATH": str(HERE)}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edge_pipeline", "build", "--out", str(project / "out"), "--json",
                           *args], cwd=project, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 1, 4):
        raise SystemExit(f"build failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout), elapsed


def revision() -> str:
    """The edgepipe commit a figure was measured at (`-dirty` when the tree had changes), for the results."""
    proc = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=HERE, capture_output=True, text=True)
    return proc.stdout.strip() or "unknown"


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def save(name: str, results: list[dict], markdown: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown)
    print(markdown)


def measured_where(artifacts: list[dict]) -> str:
    places = sorted({(a.get("measured_on") or "").split(", 1 thread")[0] for a in artifacts if a.get("measured_on")})
    runtimes = sorted({f"{a['runtime']} {a['runtime_version']}" for a in artifacts if a.get("runtime")})
    return f"Measured on: {'; '.join(places)}. Runtimes: {', '.join(runtimes)}."
