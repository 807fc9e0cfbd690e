"""Benchmark: `edgepipe build --target android` on the built-in example and on MobileNetV2 (random init),
cold (empty cache) and cached. Writes bench/results/android.json and android.md.

Every latency is host-emulated (this machine's CPU), never a phone; the table says so.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from common import build, fmt, measured_where, save

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


def run_case(name: str, toml: str | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        project, cache = Path(tmp) / "project", Path(tmp) / "cache"
        project.mkdir()
        if toml:
            (project / "edgepipe.toml").write_text(toml)
        report, cold = build(project, cache, "--target", "android")
        again, cached = build(project, cache, "--target", "android")
    same = [a["sha256"] for a in report["artifacts"]] == [a["sha256"] for a in again["artifacts"]]
    return {"case": name, "cold_s": round(cold, 2), "cached_s": round(cached, 2), "byte_identical": same,
            "source": report["source"], "artifacts": report["artifacts"], "host": report["host"],
            "tool_versions": report["tool_versions"], "stage_timings_s": report["stage_timings_s"]}


def markdown(results: list[dict]) -> str:
    lines = ["# edgepipe android benchmark", ""]
    for r in results:
        lines += [f"## {r['case']}", "",
                  f"Pipeline wall time: cold {r['cold_s']} s"
                  f"{' (includes training the example on first use)' if 'digits' in r['case'] else ''}, "
                  f"cached {r['cached_s']} s ({r['cached_s'] / r['cold_s']:.0%} of cold); "
                  f"artifacts byte-identical on rebuild: {r['byte_identical']}. "
                  f"Source accuracy {r['source']['accuracy']:.4f}.", "",
                  "| artifact | size KB | zipped KB | p50 ms 1 thr | p50 ms 2 thr | accuracy | agreement | export s |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for a in r["artifacts"]:
            by_threads = {e["threads"]: e["p50"] for e in a.get("latency_by_threads") or []}
            lines.append("| {}:{} | {:.1f} | {:.1f} | {} | {} | {} | {} | {} |".format(
                a["format"], a["precision"], a["size_bytes"] / 1024, a["size_compressed_bytes"] / 1024,
                fmt(by_threads.get(1)), fmt(by_threads.get(2)), fmt(a["accuracy"], 4), fmt(a["agreement"], 4),
                fmt((a.get("export") or {}).get("seconds"), 1)))
        lines += ["", measured_where(r["artifacts"]), ""]
    return "\n".join(lines)


def main() -> None:
    results = [run_case(name, toml) for name, toml in CASES.items()]
    save("android", results, markdown(results))


if __name__ == "__main__":
    main()
