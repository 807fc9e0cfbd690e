"""Speed budget, side by side in one run: the four android conversions written by hand with the vendor tools
(bench/vendor_android.py) vs `edgepipe build --target android` on a cold cache (four artifacts, validated,
profiled, reports written) and the unchanged rebuild; then a ranking build (`--sensitivity always`) and the peak
memory of a build whose evaluation set is 2,000 images of 224x224. Writes bench/results/speed.json and speed.md.

Everything runs on this host; nothing else should run while it does (the ratios are what to read)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import HERE, build, fmt, save

MOBILENET = """
model = "bench_models:mobilenet_v2"
example-inputs = "bench_models:example_inputs"
calibration = "bench_models:calibration"
evaluate = "{evaluate}"
[profile]
warmup = 5
runs = 50
"""
CASES = {"MobileNetV2 224x224, 3.5M params (random init)": ("bench_models:mobilenet_v2",
                                                             "bench_models:mobilenet_calibration",
                                                             MOBILENET.format(evaluate="bench_models:evaluate"), ()),
         "Fashion-MNIST example (67k params, trained)": ("bench_models:fashion_model",
                                                         "bench_models:fashion_calibration",
                                                         None, ("--example", "fashion-mnist"))}


def vendor(factory: str, calibration: str, weights_cache: Path) -> tuple[float, float]:
    """The hand-written script, timed whole (imports included); an example's trained weights come from
    `weights_cache`, trained there once before any timing."""
    env = {**os.environ, "PYTHONPATH": str(HERE), "EDGEPIPE_CACHE_DIR": str(weights_cache)}
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-c", f"import bench_models as b; b.{factory.split(':')[1]}()"], env=env,
                       check=True, capture_output=True, cwd=HERE)   # trains an example once, untimed
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, str(HERE / "vendor_android.py"), factory, calibration, tmp],
                              capture_output=True, text=True, env=env)
        wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"vendor script failed: {proc.stderr[-2000:]}")
    import json

    return wall, json.loads(proc.stdout.strip().splitlines()[-1])["conversion_s"]


class TreeRss:
    """Peak resident memory of a process and all its children, sampled every 0.2 s (psutil)."""

    def __init__(self) -> None:
        self.peak_total_mb = self.peak_single_mb = 0.0
        self._stop = threading.Event()

    def watch(self, pid: int) -> None:
        import psutil

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    root = psutil.Process(pid)
                    rss = [p.memory_info().rss for p in [root, *root.children(recursive=True)]]
                except psutil.Error:
                    rss = []
                if rss:
                    self.peak_total_mb = max(self.peak_total_mb, sum(rss) / 2**20)
                    self.peak_single_mb = max(self.peak_single_mb, max(rss) / 2**20)
                time.sleep(0.2)
        threading.Thread(target=loop, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()


def large_eval_memory() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        project, cache = Path(tmp) / "project", Path(tmp) / "cache"
        project.mkdir()
        (project / "edgepipe.toml").write_text(MOBILENET.format(evaluate="bench_models:large_evaluate")
                                               + '\n[targets.android]\nformats = ["tflite:fp32"]\n')
        env = {**os.environ, "EDGEPIPE_CACHE_DIR": str(cache), "PYTHONPATH": str(HERE)}
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "edge_pipeline", "build", "--out", str(project / "out"),
                                 "--json"], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        sampler = TreeRss()
        sampler.watch(proc.pid)
        proc.communicate()
        sampler.stop()
        return {"eval_images": 2000, "seconds": round(time.perf_counter() - started, 1), "exit": proc.returncode,
                "peak_total_mb": round(sampler.peak_total_mb), "peak_single_process_mb": round(sampler.peak_single_mb)}


def run_case(name: str, factory: str, calibration: str, toml: str | None, args: tuple[str, ...]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        project, cache, weights = Path(tmp) / "project", Path(tmp) / "cache", Path(tmp) / "weights"
        vendor_wall, vendor_conversion = vendor(factory, calibration, weights)
        if (weights / "examples").is_dir():    # the same trained weights: a cold build converts, it does not train
            shutil.copytree(weights / "examples", cache / "examples")
        project.mkdir()
        if toml:
            (project / "edgepipe.toml").write_text(toml)
        report, cold = build(project, cache, "--target", "android", *args)
        _, rebuild = build(project, cache, "--target", "android", *args)
        ranked, ranking_build = build(project, cache, "--target", "android", "--sensitivity", "always", *args)
    int8 = [a for a in ranked["artifacts"] if a["precision"] == "int8"]
    return {"case": name, "vendor_script_s": round(vendor_wall, 1), "vendor_conversion_s": vendor_conversion,
            "edgepipe_cold_s": round(cold, 1), "edgepipe_rebuild_s": round(rebuild, 1),
            "cold_vs_vendor_script": round(cold / vendor_wall, 2), "rebuild_share_of_cold": round(rebuild / cold, 3),
            "ranking_build_s": round(ranking_build, 1),
            "int8_export_s_with_ranking": {f"{a['format']}:int8": (a.get("export") or {}).get("seconds") for a in int8},
            "statuses": {f"{a['format']}:{a['precision']}": a["status"] for a in report["artifacts"]},
            "stage_timings_s": report["stage_timings_s"], "host": report["host"]}


def markdown(results: list[dict], memory: dict) -> str:
    lines = ["# Speed: edgepipe vs the vendor tools called by hand (android: pte + tflite, fp32 + int8)", "",
             "| model | vendor script s (conversions s) | edgepipe cold s | cold / vendor | "
             "rebuild s | rebuild / cold | "
             "`--sensitivity always` build s | int8 exports with ranking s |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        exports = ", ".join(f"{k} {fmt(v, 1)}" for k, v in r["int8_export_s_with_ranking"].items())
        lines.append(f"| {r['case']} | {r['vendor_script_s']} ({r['vendor_conversion_s']}) | {r['edgepipe_cold_s']} | "
                     f"{r['cold_vs_vendor_script']}x | {r['edgepipe_rebuild_s']} | "
                     f"{r['rebuild_share_of_cold'] * 100:.1f}% | "
                     f"{r['ranking_build_s']} | {exports} |")
    lines += ["", f"Bounded memory: a build whose evaluation set is {memory['eval_images']:,} images of 224x224 "
                  f"(1.2 GB as float32) peaked at {memory['peak_total_mb']:,} MB over all edgepipe processes together "
                  f"({memory['peak_single_process_mb']:,} MB in the largest one), exit {memory['exit']}, "
                  f"{memory['seconds']} s.",
              "", f"Measured on this host ({results[0]['host'].get('cpu', 'CPU')}), one run, nothing else running; "
                  "the vendor script is the same conversions with no validation and no profiling."]
    return "\n".join(lines) + "\n"


def main() -> None:
    results = [run_case(name, *case) for name, case in CASES.items()]
    memory = large_eval_memory()
    save("speed", [*results, {"large_eval_memory": memory}], markdown(results, memory))


if __name__ == "__main__":
    main()
