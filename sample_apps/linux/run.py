#!/usr/bin/env python3
"""Runs the bundled models on this board with its own runtimes and checks them against the outputs recorded at
build time. Usage: python3 run.py [--runs N]. Exit 0 when every model reproduces its expected outputs."""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def litert(path, threads):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]

    def convert(value, detail, to_tensor):
        dtype = np.dtype(detail["dtype"])
        if dtype.kind not in "iu":
            return value.astype(dtype) if to_tensor else value.astype(np.float32)
        scale, zero = detail["quantization"]
        if to_tensor:
            info = np.iinfo(dtype)
            return np.clip(np.round(value / scale + zero), info.min, info.max).astype(dtype)
        return ((value.astype(np.float32) - zero) * scale).astype(np.float32)

    def run(x):
        it.set_tensor(inp["index"], convert(x, inp, True))
        it.invoke()
        return convert(it.get_tensor(out["index"]), out, False)

    return run


def onnxruntime(path, threads):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


RUNTIMES = {"tflite": litert, "onnx": onnxruntime, "ort": onnxruntime}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    config = json.loads((HERE / "config.json").read_text())
    samples = json.loads((HERE / "samples.json").read_text())
    shape = config["input_shape"]
    ok = True
    results = {}
    for model in config["models"]:
        run = RUNTIMES[model["format"]](HERE / "models" / model["path"], args.threads)
        outputs = np.stack([run(np.asarray(x, dtype=np.float32).reshape(shape))[0] for x in samples["inputs"]])
        expected = np.asarray(samples["expected"][model["name"]], dtype=np.float32)
        diff = float(np.abs(outputs - expected).max())
        x = np.asarray(samples["inputs"][0], dtype=np.float32).reshape(shape)
        timings = []
        for _ in range(args.runs):
            start = time.perf_counter()
            run(x)
            timings.append((time.perf_counter() - start) * 1000)
        predictions = [config["labels"][i] if i < len(config["labels"]) else i for i in outputs.argmax(axis=1).tolist()]
        matches = diff <= 1e-4
        ok &= matches
        results[model["name"]] = {"predictions": predictions, "max_abs_diff": diff, "matches": matches,
                                  "p50_ms": float(np.median(timings)), "threads": args.threads}
        print(f"{model['name']}: predictions {predictions}, max |diff| vs build {diff:.2e}, "
              f"p50 {np.median(timings):.3f} ms ({args.threads} thread{'s' if args.threads != 1 else ''}, this board)")
    print(json.dumps(results))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
