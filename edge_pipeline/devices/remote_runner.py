"""Runs one artifact on a device with the device's own Python runtime; pushed there by edgepipe.

Standalone on purpose (standard library + numpy + the board's runtime: ai-edge-litert, onnxruntime or
executorch), so a board needs nothing of edgepipe. Usage:
    python3 remote_runner.py ARTIFACT INPUTS.npz OUTPUTS.npz --threads N [--batch B] [--warmup W --runs R]
Prints one JSON line: {"runtime": ..., "version": ..., "samples_ms": [...]} or {"error": ...}.
"""
import argparse
import json
import sys
import time

import numpy as np


def open_litert(path, threads):
    from ai_edge_litert.interpreter import Interpreter
    import ai_edge_litert

    it = Interpreter(model_path=path, num_threads=threads)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]

    def convert(value, detail, forward):
        dtype = np.dtype(detail["dtype"])
        if dtype.kind not in "iu":
            return value.astype(dtype) if forward else value.astype(np.float32)
        scale, zero = detail["quantization"]
        if forward:
            info = np.iinfo(dtype)
            return np.clip(np.round(value / scale + zero), info.min, info.max).astype(dtype)
        return ((value.astype(np.float32) - zero) * scale).astype(np.float32)

    def run(x):
        it.set_tensor(inp["index"], convert(x, inp, True))
        it.invoke()
        return convert(it.get_tensor(out["index"]), out, False)

    return run, "LiteRT interpreter", getattr(ai_edge_litert, "__version__", "?")


def open_onnxruntime(path, threads):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return (lambda x: session.run(None, {name: x})[0]), "ONNX Runtime (CPU)", ort.__version__


def open_executorch(path, threads):
    import torch
    from executorch.extension.pybindings import portable_lib
    from executorch.runtime import Runtime

    portable_lib._unsafe_reset_threadpool(threads)
    method = Runtime.get().load_program(path).load_method("forward")
    import importlib.metadata as md
    return (lambda x: method.execute([torch.from_numpy(x)])[0].numpy()), "ExecuTorch runtime", md.version("executorch")


OPENERS = {".tflite": open_litert, ".onnx": open_onnxruntime, ".ort": open_onnxruntime, ".pte": open_executorch}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("artifact")
    parser.add_argument("inputs")
    parser.add_argument("outputs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--runs", type=int, default=0)
    args = parser.parse_args()
    suffix = args.artifact[args.artifact.rfind("."):]
    if suffix not in OPENERS:
        raise SystemExit(json.dumps({"error": f"no runtime for {suffix} files on this device"}))
    try:
        run, runtime, version = OPENERS[suffix](args.artifact, args.threads)
    except ImportError as exc:
        print(json.dumps({"error": f"the device lacks the runtime for {suffix}: {exc}"}))
        return 3
    x = np.load(args.inputs)["x"].astype(np.float32)
    samples = []
    if args.runs:
        sample = np.ascontiguousarray(x[:args.batch])
        for _ in range(args.warmup):
            run(sample)
        for _ in range(args.runs):
            start = time.perf_counter_ns()
            run(sample)
            samples.append((time.perf_counter_ns() - start) / 1e6)
    else:
        outs = [run(np.ascontiguousarray(x[i:i + args.batch])) for i in range(0, len(x) - args.batch + 1, args.batch)]
        np.savez(args.outputs, y=np.concatenate(outs))
    print(json.dumps({"runtime": runtime, "version": version, "samples_ms": samples}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
