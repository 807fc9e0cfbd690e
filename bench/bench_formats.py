"""Benchmark: the PyTorch and the Keras digits examples side by side through every format they reach
(tflite fp32/fp16/dynamic/int8, tfjs fp32/uint8 in Node wasm and cpu, onnx/ort fp32/int8, pte fp32/int8).
Writes bench/results/formats.json and formats.md. Latency is host-emulated, never a phone."""
from __future__ import annotations

import tempfile
from pathlib import Path

from common import build, fmt, measured_where, save

FORMATS = ["tflite:fp32", "tflite:fp16", "tflite:int8-dynamic", "tflite:int8", "tfjs:fp32", "tfjs:uint8",
           "onnx:fp32", "onnx:int8", "ort:fp32", "ort:int8", "pte:fp32", "pte:int8"]
EXAMPLES = ("torch-digits", "keras-digits")


def run_example(example: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        toml = f'example = "{example}"\n[targets.android]\nformats = [{", ".join(repr(f) for f in FORMATS)}]\n'
        (project / "edgepipe.toml").write_text(toml.replace("'", '"'))
        report, seconds = build(project, project / "cache", "--target", "android")
    return {"example": example, "wall_s": round(seconds, 1), "source": report["source"],
            "artifacts": report["artifacts"]}


def markdown(results: list[dict]) -> str:
    lines = ["# Every format, both frameworks", "",
             "| source | artifact | route | size KB | zipped KB | p50 ms (1 thr) | p50 ms cpu backend | "
             "accuracy | agreement | convert s |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        for a in r["artifacts"]:
            by_backend = {e.get("backend"): e["p50"] for e in a.get("latency_by_threads") or [] if e["threads"] == 1}
            route = (a.get("export") or {}).get("bridge") or "direct"
            lines.append("| {} | {}:{} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                r["example"], a["format"], a["precision"], route if a["status"] == "ok" else a["status"],
                fmt((a["size_bytes"] or 0) / 1024, 1), fmt((a["size_compressed_bytes"] or 0) / 1024, 1),
                fmt((a.get("latency_ms") or {}).get("p50")), fmt(by_backend.get("cpu")), fmt(a["accuracy"], 4),
                fmt(a["agreement"], 4), fmt((a.get("export") or {}).get("seconds"), 1)))
    lines += ["", "Conversion time: the export stage after the source model is loaded (it includes importing the "
              "converter when loading the source did not already: TensorFlow is imported by a Keras source, "
              "litert-torch is not).",
              measured_where([a for r in results for a in r["artifacts"]]), ""]
    return "\n".join(lines)


def main() -> None:
    results = [run_example(name) for name in EXAMPLES]
    save("formats", results, markdown(results))


if __name__ == "__main__":
    main()
