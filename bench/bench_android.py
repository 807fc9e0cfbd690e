"""Benchmark: `edgepipe build --target android` on the built-in example and on MobileNetV2 (random init),
cold (empty cache) and cached. Writes bench/results/android.json and android.md.

Every latency is host-emulated (this machine's CPU), never a phone; the table says so.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
MOBILENET_TOML = """
model = "bench_models:mobilenet_v2"
example-inputs = "bench_models:example_inputs"
calibration = "bench_models:calibration"
evaluate = "bench_models:evaluate"
[profile]
warmup = 5
runs = 50
"""
CASES = {"torch-digits (built-in, trained on sklearn digits)": None,
         "MobileNetV2 3.5M params (random init: accuracy meaningless)": MOBILENET_TOML}


def build(project: Path, cache: Path) -> tuple[dict, float]:
    env = {**os.environ, "EDGEPIPE_CACHE_DIR": str(cache), "PYTHONPATH": str(HERE)}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edge_pipeline", "build", "--target", "android",
                           "--out", str(project / "out"), "--json"], cwd=project, env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"build failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout), elapsed


def run_case(name: str, toml: str | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        project, cache = Path(tmp) / "project", Path(tmp) / "cache"
        project.mkdir()
        if toml:
            (project / "edgepipe.toml").write_text(toml)
        report, cold = build(project, cache)
        again, cached = build(project, cache)
    same = [a["sha256"] for a in report["artifacts"]] == [a["sha256"] for a in again["artifacts"]]
    return {"case": name, "cold_s": round(cold, 2), "cached_s": round(cached, 2), "byte_identical": same,
            "source": report["source"], "artifacts": report["artifacts"], "host": report["host"],
            "tool_versions": report["tool_versions"], "stage_timings_s": report["stage_timings_s"]}


def markdown(results: list[dict]) -> str:
    lines = ["# edgepipe android benchmark", ""]
    for r in results:
        lines += [f"## {r['case']}", "",
                  f"Pipeline wall time: cold {r['cold_s']} s (includes training the example on first use), "
                  f"cached {r['cached_s']} s ({r['cached_s'] / r['cold_s']:.0%} of cold); "
                  f"artifacts byte-identical on rebuild: {r['byte_identical']}. "
                  f"Source accuracy {r['source']['accuracy']:.4f}.", "",
                  "| artifact | size KB | zipped KB | p50 ms 1 thr | p50 ms 2 thr | accuracy | agreement | export s |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for a in r["artifacts"]:
            by_threads = {e["threads"]: e["p50"] for e in a.get("latency_by_threads") or []}
            lines.append("| {}:{} | {:.1f} | {:.1f} | {} | {} | {} | {} | {} |".format(
                a["format"], a["precision"], a["size_bytes"] / 1024, a["size_compressed_bytes"] / 1024,
                _f(by_threads.get(1)), _f(by_threads.get(2)), _f(a["accuracy"], 4), _f(a["agreement"], 4),
                _f((a.get("export") or {}).get("seconds"), 1)))
        measured = r["artifacts"][0].get("measured_on") or ""
        lines += ["", f"Measured on: {measured.rsplit(',', 1)[0]}; runtimes: "
                  + ", ".join(sorted({f"{a['runtime']} {a['runtime_version']}" for a in r["artifacts"]})), ""]
    return "\n".join(lines)


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> None:
    results = [run_case(name, toml) for name, toml in CASES.items()]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "android.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "android.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
