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
sys.path.insert(0, str(HERE))


def open_model(path, threads):
    """board_runtime.py is edgepipe's device runner script, shipped beside this file."""
    from board_runtime import OPENERS

    run, _runtime, _version = OPENERS[path.suffix](str(path), threads)
    return run


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
        run = open_model(HERE / "models" / model["path"], args.threads)
        outputs = np.stack([run([np.asarray(x, dtype=np.float32).reshape(shape)])[0][0] for x in samples["inputs"]])
        expected = np.asarray(samples["expected"][model["name"]], dtype=np.float32)
        diff = float(np.abs(outputs - expected).max())
        x = np.asarray(samples["inputs"][0], dtype=np.float32).reshape(shape)
        timings = []
        for _ in range(args.runs):
            start = time.perf_counter()
            run([x])
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
