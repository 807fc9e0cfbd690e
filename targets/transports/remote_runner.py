"""Runs one artifact on a device with the device's own Python runtime; pushed there by edgepipe.

Standalone on purpose (standard library + numpy + the board's runtime: ai-edge-litert, onnxruntime or
executorch), so a board needs nothing of edgepipe. Inputs are x0, x1, ... (model order) in INPUTS.npz; outputs
y0, y1, ... in OUTPUTS.npz. Usage:
    python3 remote_runner.py ARTIFACT INPUTS.npz OUTPUTS.npz --threads N [--batch B] [--warmup W --runs R]
(--batch 0: the inputs are one call, fed whole)
Prints one JSON line: {"runtime": ..., "version": ..., "samples_ms": [...]} or {"error": ...}.
"""
import argparse
import json
import re
import sys
import time

import numpy as np


def signature_order(interpreter):
    """A .tflite's inputs and outputs in its signature's order, with their names, when it has one signature that
    covers them all (converters name and reorder I/O: litert-torch sorts dict keys, TFLiteConverter keeps Keras
    names); else in tensor order with no output names. edgepipe's own LiteRT runner uses this too, so a board
    feeds and reads positions exactly as the build host did: (inputs, input names, outputs, output names)."""
    inputs = {d["index"]: d for d in interpreter.get_input_details()}
    outputs = {d["index"]: d for d in interpreter.get_output_details()}
    signature = next(iter((interpreter._get_full_signature_list() or {}).values()), None)
    if not (signature and len(signature["inputs"]) == len(inputs) and len(signature["outputs"]) == len(outputs)):
        return list(inputs.values()), [d["name"] for d in inputs.values()], list(outputs.values()), None
    input_names, output_names = _positional(list(signature["inputs"])), _positional(list(signature["outputs"]))
    return ([inputs[signature["inputs"][n]] for n in input_names], input_names,
            [outputs[signature["outputs"][n]] for n in output_names], output_names)


def _positional(names):
    """litert-torch names positional I/O `args_0`, `output_0`, ...: order those by number."""
    numbered = [re.fullmatch(r"(?:args|output)_(\d+)", n) for n in names]
    if names and all(numbered):
        return [n for _, n in sorted(zip((int(m.group(1)) for m in numbered), names))]
    return names


def open_litert(path, threads):
    import ai_edge_litert
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=path, num_threads=threads)
    it.allocate_tensors()
    inputs, _, outputs, _ = signature_order(it)

    def convert(value, detail, forward):
        dtype = np.dtype(detail["dtype"])
        scale, zero = detail["quantization"]
        if dtype.kind not in "iu" or not scale or (forward and value.dtype.kind in "iub"):
            return value.astype(dtype) if forward else value.astype(np.float32 if dtype.kind == "f" else dtype)
        if forward:
            info = np.iinfo(dtype)
            return np.clip(np.round(value / scale + zero), info.min, info.max).astype(dtype)
        return ((value.astype(np.float32) - zero) * scale).astype(np.float32)

    def run(xs):
        for detail, x in zip(inputs, xs):
            it.set_tensor(detail["index"], convert(x, detail, True))
        it.invoke()
        return [convert(it.get_tensor(d["index"]), d, False) for d in outputs]

    try:
        version = ai_edge_litert.__version__
    except AttributeError:   # some builds do not set it
        version = "?"
    return run, "LiteRT interpreter", version


def open_onnxruntime(path, threads):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return (lambda xs: session.run(None, dict(zip(names, xs)))), "ONNX Runtime (CPU)", ort.__version__


def open_executorch(path, threads):
    import torch
    from executorch.extension.pybindings import portable_lib
    from executorch.runtime import Runtime

    portable_lib._unsafe_reset_threadpool(threads)
    method = Runtime.get().load_program(path).load_method("forward")
    import importlib.metadata as md

    def run(xs):
        return [o.numpy() for o in method.execute([torch.from_numpy(x) for x in xs])]
    return run, "ExecuTorch runtime", md.version("executorch")


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
    with np.load(args.inputs, allow_pickle=False) as npz:
        xs = [npz[f"x{i}"] for i in range(len(npz.files))]
    samples = []
    if args.runs:
        sample = [np.asarray(x if args.batch == 0 else x[:args.batch], order="C") for x in xs]
        for _ in range(args.warmup):
            run(sample)
        for _ in range(args.runs):
            start = time.perf_counter_ns()
            run(sample)
            samples.append((time.perf_counter_ns() - start) / 1e6)
    else:
        outs = [run(xs)] if args.batch == 0 else [run([np.asarray(x[i:i + args.batch], order="C") for x in xs])
                                                   for i in range(0, len(xs[0]) - args.batch + 1, args.batch)]
        np.savez(args.outputs, **{f"y{k}": _stacked([np.asarray(o[k]) for o in outs]) for k in range(len(outs[0]))})
    print(json.dumps({"runtime": runtime, "version": version, "samples_ms": samples}))
    return 0


def _stacked(chunks: list[np.ndarray]) -> np.ndarray:
    """Batches of one output as one array (a scalar output: one value per batch)."""
    return np.stack(chunks) if chunks[0].ndim == 0 else np.concatenate(chunks)


if __name__ == "__main__":
    sys.exit(main())
