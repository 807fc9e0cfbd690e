"""Benchmark (issue 20, item 2): the post-training methods edgepipe offers for PT2E backends, compared on real
pretrained networks (bench/real_models.py) on their evaluation sets (bench/real_data.py: text lines for the
orientation classifier, photo crops for the others), every region int8, no fallback. Each variant is edgepipe's
own `quantize_static` with the backend's quantizer (XNNPACK's for `.pte`, litert-torch's for `.tflite`),
measured as PT2E's reference q/dq graph in torch on the same evaluation samples, so the variants differ in
nothing but the method. Two diagnostics split the int8 error: weights only (per-channel int8 round trip,
activations float) and activations only.

Writes bench/results/ptq_methods.json and ptq_methods.md. All on this host's CPU; no latency is measured here."""
from __future__ import annotations

import copy
import dataclasses
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import real_data  # noqa: E402
import real_models  # noqa: E402
from common import save  # noqa: E402

NETWORKS = ("ppocr_cls", "fer")
VARIANTS = (("histogram", ()), ("minmax", ()), ("percentile", ()), ("histogram", ("fast-bias-correction",)),
            ("histogram", ("bias-correction",)), ("histogram", ("smooth-quant",)),
            ("minmax", ("bias-correction",)))
BACKENDS = ("xnnpack-int8", "litert-int8")


def evaluate(module: object, inputs: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.concatenate([module(torch.from_numpy(inputs[i:i + 1])).numpy() for i in range(len(inputs))])


def score(name: str, outputs: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> dict:
    """The metric and its drop from the float model's own (1.0 where the labels are the float model's outputs)."""
    metric = real_data.task_metric(name, outputs, labels)
    baseline = real_data.task_metric(name, reference, labels)
    return {"metric": round(metric, 4), "drop_pt": round((baseline - metric) * 100, 1),
            "sqnr_db": round(real_models.sqnr_db(reference, outputs), 1)}


def diagnostics(name: str, module: object, captured: object, calibration: np.ndarray) -> list[dict]:
    """Where the int8 error comes from: weights alone, activations alone (XNNPACK's quantizer)."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    inputs, reference = real_data.evaluation_set(name)
    labels = real_data.labels_from(name, reference)
    weights_only = copy.deepcopy(module)
    with torch.no_grad():
        for weight in (p for p in weights_only.parameters() if p.dim() > 1):
            scale = weight.abs().amax(dim=tuple(range(1, weight.dim())), keepdim=True).clamp_min(1e-12) / 127
            weight.copy_(torch.round(weight / scale).clamp(-127, 127) * scale)
    config = dataclasses.replace(get_symmetric_quantization_config(is_per_channel=True), weight=None)
    prepared = prepare_pt2e(copy.deepcopy(captured), XNNPACKQuantizer().set_global(config))
    with torch.no_grad():
        for i in range(len(calibration)):
            prepared(torch.from_numpy(calibration[i:i + 1]))
    activations_only = convert_pt2e(prepared, fold_quantize=False)
    return [{"network": name, "backend": "diagnostic", "variant": label,
             **score(name, evaluate(m, inputs), reference, labels)}
            for label, m in (("weights only (per-channel int8)", weights_only),
                             ("activations only (histogram)", activations_only))]


def litert_recipes(name: str, module: object, data: object, calibration: np.ndarray) -> list[dict]:
    """ai-edge-quantizer on the float `.tflite` (litert-torch's conversion), run in LiteRT: its static int8 recipe
    called by hand, and edgepipe's `tflite:16x8` (int16 activations everywhere, the same tool)."""
    import tempfile

    import litert_torch
    import torch
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import recipe

    from edge_pipeline import registry
    from edge_pipeline.plugins import QuantizeSettings, Transform
    from quantization.litert_recipes import LitertRecipe
    from targets.runners.litert import LitertSession

    class StaticInt8(LitertRecipe):      # the recipe exactly as ai-edge-quantizer ships it
        name, recipe, scheme, needs_calibration = "aeq-static-int8", "static_wi8_ai8", "static int8", True

        def steps(self) -> list:
            return recipe.static_wi8_ai8()

    inputs, reference = real_data.evaluation_set(name)
    labels = real_data.labels_from(name, reference)
    folder = Path(tempfile.mkdtemp(prefix=f"ptq-{name}-"))
    litert_torch.convert(module, (torch.from_numpy(calibration[:1]),)).export(str(folder / "float.tflite"))
    rows = []
    for label, transform in (("ai-edge-quantizer static_wi8_ai8 (by hand)", StaticInt8()),
                             ("edgepipe tflite:16x8 (ai-edge-quantizer static_wi8_ai16)",
                              registry.create(Transform, "litert-16x8"))):
        started = time.perf_counter()
        dest = folder / f"{transform.name}.tflite"
        transform.apply_artifact(folder / "float.tflite", dest, data, QuantizeSettings())
        seconds = round(time.perf_counter() - started, 1)
        interpreter = Interpreter(model_path=str(dest))
        interpreter.allocate_tensors()
        session = LitertSession(interpreter)
        outputs = np.concatenate([session.run([inputs[i:i + 1]])[0] for i in range(len(inputs))]).astype(np.float32)
        rows.append({"network": name, "backend": "LiteRT, on the float .tflite", "variant": label,
                     "quantize_s": seconds, **score(name, outputs, reference, labels),
                     "load_1min": round(os.getloadavg()[0], 2)})
    return rows


def run(name: str) -> list[dict]:
    import torch

    from edge_pipeline.plugins import DataBundle, Model
    from quantization.litert_int8 import LitertInt8
    from quantization.pt2e import capture_for_quantization, quantize_static
    from quantization.xnnpack_int8 import XnnpackInt8

    calibration = real_data.samples(name, "calibration")
    inputs, reference = real_data.evaluation_set(name)
    labels = real_data.labels_from(name, reference)
    module = real_models.torch_module(name).eval()
    model = Model("torch", module, (torch.from_numpy(calibration[:1]),))
    data = DataBundle.single("x", calibration[:1], calibration, inputs, labels)
    rows = diagnostics(name, module, capture_for_quantization(model), calibration)
    rows += litert_recipes(name, module, data, calibration)
    for backend in BACKENDS:
        transform = XnnpackInt8() if backend == "xnnpack-int8" else LitertInt8()
        for method, algorithms in VARIANTS:
            nncf = bool(algorithms) or method == "percentile"   # NNCF calibrates: its own range estimators
            ranges = "NNCF default ranges" if nncf and method == "histogram" else method
            variant = ("NNCF: " if nncf else "torchao: ") + ranges + "".join(f" + {a}" for a in algorithms)
            row = {"network": name, "backend": backend, "variant": variant}
            started = time.perf_counter()
            try:
                graph = capture_for_quantization(model)   # as a build does: a fresh capture, the backend's rewrites
                transform.prepare_graph(graph)
                quantized = quantize_static(model, transform.float_quantizer(lambda _: True, method), data,
                                            fold_quantize=False, captured=graph, algorithms=algorithms,
                                            method=method)
            except Exception as exc:    # a method that cannot run on this graph is a result
                rows.append({**row, "error": f"{type(exc).__name__}: {str(exc).strip()[:200]}"})
                continue
            seconds = round(time.perf_counter() - started, 1)
            rows.append({**row, "quantize_s": seconds, **score(name, evaluate(quantized.module, inputs), reference,
                                                                 labels), "load_1min": round(os.getloadavg()[0], 2)})
            print(rows[-1], flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["# Post-training methods on real networks, every region int8 (reference q/dq graph in torch)", "",
             "Same calibration and evaluation sets per network (bench/real_data.py): ppocr_cls 64 + 512 text lines "
             "labelled with their true orientation (metric: accuracy), the others 64 + 128 photo crops labelled with "
             "the float model's top-1 (metric: agreement); drop = float metric - metric, in pt. `quantize s`: a fresh "
             "capture, the backend's graph "
             "rewrites, calibration and conversion, on this 2-core x86_64 host.", "",
             "| network | backend | method | metric | drop pt | SQNR dB | quantize s |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['network']} | {r['backend']} | {r['variant']} | error: {r['error']} | | | |")
            continue
        lines.append(f"| {r['network']} | {r['backend']} | {r['variant']} | {r['metric']:.4f} | {r['drop_pt']} | "
                     f"{r['sqnr_db']} | {r.get('quantize_s', '-')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    rows = [row for name in (sys.argv[1:] or NETWORKS) for row in run(name)]
    save("ptq_methods", rows, markdown(rows))


if __name__ == "__main__":
    main()
