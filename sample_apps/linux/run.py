#!/usr/bin/env python3
"""Replays the calls recorded at build time through every bundled model with this board's own runtimes, feeding
a stateful model's state back from call to call, and checks each call's outputs against what the model answered
on the build host. Usage: python3 run.py [--runs N] [--threads N]. Exit 0 when every model reproduces them."""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
RTOL = ATOL = 1e-4     # another CPU's kernels may round differently; a broken model is off by far more


def open_model(path, threads):
    """board_runtime.py is edgepipe's device runner script, shipped beside this file."""
    from board_runtime import OPENERS

    run, _runtime, _version = OPENERS[path.suffix](str(path), threads)
    return run


def replay(run, model, stream, recorded):
    """Every recorded call in order, state inputs fed from the call before (zeros, or the recorded value, at the
    start of each sequence): the outputs of each call by name, and the time of each call in ms."""
    feeds = {target: source for source, target in stream["state"]}
    state, outputs, timings = {}, [], []
    for t in range(stream["calls"]):
        if t % stream["sequence_calls"] == 0:
            state = {}
        xs = []
        for name in model["inputs"]:
            value = np.asarray(recorded[f"in/{name}"][t])
            if name in feeds:
                start = value if stream["initial_state"] == "data" else np.zeros_like(value)
                value = state.get(name, start).astype(value.dtype)
            xs.append(value)
        start = time.perf_counter()
        raw = run(xs)
        timings.append((time.perf_counter() - start) * 1000)
        named = {name: np.asarray(r) for name, r in zip(model["outputs"], raw) if name is not None}
        state = {target: named[source] for source, target in stream["state"] if source in named}
        outputs.append(named)
    return outputs, timings


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="replays of the recorded calls to time")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    config = json.loads((HERE / "config.json").read_text())
    if not (HERE / "stream.json").is_file():
        print("error: this bundle holds no recorded calls (its build predates them): rebuild and bundle again",
              file=sys.stderr)
        return 2
    stream = json.loads((HERE / "stream.json").read_text())
    recorded = np.load(HERE / "recorded.npz", allow_pickle=False)
    ok, results = True, {}
    for entry in config["models"]:
        model = stream["models"][entry["name"]]
        run = open_model(HERE / "models" / entry["path"], args.threads)
        outputs, timings = replay(run, model, stream, recorded)
        for _ in range(max(0, args.runs - 1)):
            timings += replay(run, model, stream, recorded)[1]
        worst, first_bad = 0.0, None
        for t, named in enumerate(outputs):
            for name, value in named.items():
                expected = recorded[f"out/{entry['name']}/{name}"][t]
                worst = max(worst, float(np.abs(value.astype(np.float64) - expected).max(initial=0.0)))
                if first_bad is None and not np.allclose(value, expected, rtol=RTOL, atol=ATOL):
                    first_bad = f"call {t + 1}, output '{name}'"
        ok &= first_bad is None
        results[entry["name"]] = {"calls": len(outputs), "max_abs_diff": worst, "matches": first_bad is None,
                                  "first_mismatch": first_bad, "p50_ms": float(np.median(timings)),
                                  "threads": args.threads}
        state = f", state {', '.join(f'{s} -> {t}' for s, t in stream['state'])}" if stream["state"] else ""
        verdict = "reproduces the build" if first_bad is None else f"differs from the build at {first_bad}"
        print(f"{entry['name']}: {len(outputs)} calls{state}: {verdict} (max |diff| {worst:.2e}); "
              f"p50 {np.median(timings):.3f} ms per call ({args.threads} thread{'s' if args.threads != 1 else ''}, "
              f"this board)")
    print(json.dumps(results))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
