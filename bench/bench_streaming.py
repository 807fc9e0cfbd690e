"""Benchmark: the streaming test models (tests/streaming_models.py) through every runtime, validated over whole
sequences: per output, SQNR at step 1 and at the last step, the drift, and the latency of one call with its
state, with the real-time factor where the chunk's duration is known. Writes bench/results/streaming.json and
streaming.md. Latency is host-emulated, never a phone or a board."""
from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path

from common import HERE, build, fmt, measured_where, save

MODELS = HERE.parent / "tests" / "streaming_models.py"
FORMATS = '"pte:fp32", "pte:int8", "tflite:fp32", "tflite:int8", "onnx:fp32", "onnx:int8"'
PROJECTS = {
    "GRU keyword spotter (scalar rate, state on axis 1)": f"""
model = "streaming:make_spotter"
weights = "spotter.pt"
example-inputs = "streaming:spotter_example"
batch-dims = {{ state = 1 }}
chunk-duration-ms = 80
calibration = "streaming:spotter_calibration"
evaluate = "streaming:spotter_evaluate"
[targets.stream]
extends = "android"
formats = [{FORMATS}]
""",
    "causal conv with a context buffer ([state] declared)": f"""
model = "streaming:make_conv_stream"
example-inputs = {{ chunk = {{ shape = [1, 1, 32] }}, buffer = {{ shape = [1, 1, 6], value = 0.0 }} }}
chunk-duration-ms = 2
calibration = "streaming:conv_calibration"
evaluate = "streaming:conv_evaluate"
[state]
buffer_out = "buffer"
[targets.stream]
extends = "android"
formats = [{FORMATS}]
""",
    "nn.LSTM, sequence-first, (h, c) tuple state": f"""
model = "streaming:make_tuple_lstm"
example-inputs = "streaming:tuple_lstm_example"
batch-dims = {{ x = 1, state = 1 }}
calibration = "streaming:tuple_lstm_calibration"
evaluate = "streaming:tuple_lstm_evaluate"
[targets.stream]
extends = "android"
formats = [{FORMATS}]
""",
    "Keras GRU with explicit state (unrolled)": """
model = "streaming:make_keras_spotter"
example-inputs = "streaming:keras_example"
calibration = "streaming:keras_calibration"
evaluate = "streaming:keras_evaluate"
[targets.stream]
extends = "android"
formats = ["tflite:fp32", "tflite:int8", "onnx:fp32", "onnx:int8"]
""",
}


def run(name: str, toml: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        shutil.copyfile(MODELS, project / "streaming.py")
        (project / "edgepipe.toml").write_text(toml)
        if "spotter.pt" in toml:
            import torch

            spec = importlib.util.spec_from_file_location("streaming_bench", project / "streaming.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            torch.save(module.train_spotter().state_dict(), project / "spotter.pt")
        report, seconds = build(project, project / "cache", "--target", "stream")
    return {"model": name, "wall_s": round(seconds, 1), "artifacts": report["artifacts"]}


def markdown(results: list[dict]) -> str:
    lines = ["# Streaming models over whole sequences", "",
             "| model | artifact | output | SQNR dB step 1 | last step | drift dB | p50 ms per call | real-time factor "
             "| accuracy |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        for a in r["artifacts"]:
            sequence = (a.get("validation") or {}).get("sequence") or {}
            for o in sequence.get("outputs", []):
                lines.append("| {} | {}:{} | {} | {} | {} | {} | {} | {} | {} |".format(
                    r["model"], a["format"], a["precision"], o["name"] + (" (state)" if o["state"] else ""),
                    "exact" if o["first_sqnr_db"] is None else fmt(o["first_sqnr_db"], 1),
                    "exact" if o["last_sqnr_db"] is None else fmt(o["last_sqnr_db"], 1), fmt(o["drift_db"], 2),
                    fmt((a.get("latency_ms") or {}).get("p50")), fmt(sequence.get("real_time_factor"), 5),
                    fmt(a.get("accuracy"), 4)))
    artifacts = [a for r in results for a in r["artifacts"]]
    return "\n".join(lines + ["", measured_where(artifacts)]) + "\n"


if __name__ == "__main__":
    results = [run(name, toml) for name, toml in PROJECTS.items()]
    save("streaming", results, markdown(results))
