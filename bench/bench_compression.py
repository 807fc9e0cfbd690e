"""Benchmark: compression on Fashion-MNIST (Debian dataset-fashion-mnist) with the MobileNet-style example:
dense fp32, int8, weight-only int8, 16x8, 50% structured + fine-tune + int8, 50% unstructured + int8, and
ExecuTorch 8da4w. Size raw and zipped, params, MACs, p50 per runtime, accuracy. Writes
bench/results/compression.json and .md.
Latency is host-emulated (this host's CPU), never a phone."""
from __future__ import annotations

import tempfile
from pathlib import Path

from common import build, fmt, measured_where, save

FINE_TUNE = "targets.examples.fashion_mnist:fine_tune"
VARIANTS = [
    ("dense", ["tflite:fp32", "pte:fp32", "tflite:int8", "pte:int8", "pte:int4", "tflite:int8-weight",
               "tflite:int16x8"], []),
    ("50% structured + fine-tune", ["tflite:fp32", "tflite:int8", "pte:int8"],
     ["--prune", "0.5", "--prune-structured", "--fine-tune", FINE_TUNE]),
    ("50% unstructured", ["tflite:int8", "pte:int8"], ["--prune", "0.5"]),
]


def main() -> None:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"      # one cache: the example trains once
        for name, formats, flags in VARIANTS:
            project = Path(tmp) / name.replace(" ", "-").replace("%", "pct").replace("+", "")
            project.mkdir()
            toml = f'example = "fashion-mnist"\n[targets.android]\nformats = [{", ".join(repr(f) for f in formats)}]\n'
            (project / "edgepipe.toml").write_text(toml.replace("'", '"'))
            report, seconds = build(project, cache, "--target", "android", *flags)
            results.append({"variant": name, "wall_s": round(seconds, 1), "source": report["source"],
                            "artifacts": report["artifacts"]})
    save("compression", results, markdown(results))


def markdown(results: list[dict]) -> str:
    dense_fp32 = {a["format"]: a["size_bytes"] for a in results[0]["artifacts"] if a["precision"] == "fp32"}
    lines = ["# Compression on Fashion-MNIST (MobileNet-style CNN, 2,000 test images)", "",
             "| variant | artifact | size KB | % of dense fp32 | zipped KB | params | MACs | p50 ms (1 thr) | "
             "accuracy | drop pt |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        pruning = r["source"].get("pruning") or {}
        after = pruning.get("after") or {}
        params = after.get("params", r["source"]["params"])
        macs = after.get("macs", (pruning.get("before") or {}).get("macs"))
        for a in r["artifacts"]:
            share = 100 * a["size_bytes"] / dense_fp32[a["format"]] if a.get("size_bytes") else None
            lines.append("| {} | {}:{} | {} | {} | {} | {:,} | {} | {} | {} | {} |".format(
                r["variant"], a["format"], a["precision"], fmt((a["size_bytes"] or 0) / 1024, 1), fmt(share, 1),
                fmt((a["size_compressed_bytes"] or 0) / 1024, 1), params, f"{macs:,}" if macs else "-",
                fmt((a.get("latency_ms") or {}).get("p50")), fmt(a["accuracy"], 4), fmt(a["accuracy_drop"], 2)))
    lines += ["", "MACs are counted by torch-pruning on the source model (dense: before pruning).",
              measured_where([a for r in results for a in r["artifacts"]]), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
