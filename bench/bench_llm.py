"""Benchmark (issue 21): `edgepipe build --example tiny-lm` (android: ExecuTorch and LiteRT; linux-arm64: ONNX
Runtime GenAI) against each vendor's own LLM path called by hand on the same model, side by side in one run, on
this host's CPU (never a phone).

- Export: the vendor's steps by hand in a fresh process, timed from the trained model to the written artifact,
  the converter's import paid once by the first precision as edgepipe's export worker pays it (ExecuTorch:
  transformers' static-cache module, torchao 8da4w, XNNPACK lowering; LiteRT: `save_pretrained` and litert-torch's
  `export_hf` to a `.litertlm`; GenAI: `save_pretrained` and its model builder), against
  edgepipe's own export seconds for the same artifact (its report).
- Speed: decode tokens/s as edgepipe measures it (its own code, a fresh process) against the vendor's own loop
  run by hand on the very file edgepipe shipped (ExecuTorch's TextLLMRunner and its Stats; LiteRT-LM's engine and
  its benchmark info; GenAI's generator, timed around `generate_next_token`), alternating 5 rounds, medians.
- Token-level figures from the report: agreement, perplexity increase, first divergence per prompt.

Writes bench/results/llm.json and llm.md."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import save  # noqa: E402

RUNS, ROUNDS = 7, 5
TRAIN = "from targets.llm import tiny_lm; model, tokenizer = tiny_lm.make()\n"
SAVE_FOLDER = r'''
from transformers import PreTrainedTokenizerFast
folder = out / "hf"
model.save_pretrained(folder, safe_serialization=True)
PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="</s>",
                        unk_token="<unk>").save_pretrained(folder)
'''
VENDOR_EXPORT = {
    "pte": TRAIN + r'''
import copy
from targets.llm import pte_export
metadata = pte_export.DecoderMetadata(tiny_lm.CONTEXT, tokenizer.get_vocab_size(), 1, (2,))
for precision in ("fp32", "8da4w"):
    candidate = copy.deepcopy(model)
    started = time.perf_counter()
    if precision == "8da4w":
        pte_export.quantize_8da4w(candidate)
    pte_export.export_decoder(candidate, out / f"{precision}.pte", metadata)
    times[precision] = time.perf_counter() - started
''',
    "tflite": TRAIN + r'''
for precision, recipe in (("fp32", "none"), ("int8-dynamic", "dynamic_wi8_afp32")):
    started = time.perf_counter()
    from litert_torch.generative.export_hf import export as export_hf   # the first export pays the import
''' + "\n".join("    " + line for line in SAVE_FOLDER.strip().splitlines()) + r'''
    export_hf.export(model=str(folder), output_dir=str(out / precision), prefill_lengths=[32], cache_length=128,
                     quantization_recipe=recipe, bundle_litert_lm=True)
    times[precision] = time.perf_counter() - started
''',
    "onnx": TRAIN + r'''
import subprocess, sys
for precision in ("fp32", "int4"):
    started = time.perf_counter()
''' + "\n".join("    " + line for line in SAVE_FOLDER.strip().splitlines()) + r'''
    boot = ("import runpy, sys; import onnxruntime_genai.models as m; sys.path.insert(0, m.__path__[0]); "
            "sys.argv = ['builder', *sys.argv[1:]]; runpy.run_module('onnxruntime_genai.models.builder', "
            "run_name='__main__')")
    extra = ["--extra_options", "nodes_to_exclude=/lm_head/MatMul"] if precision == "int4" else []
    subprocess.run([sys.executable, "-c", boot, "-i", str(folder), "-o", str(out / precision), "-p", precision,
                    "-e", "cpu", "-c", str(out / "cache"), *extra], check=True, capture_output=True, cwd=out)
    times[precision] = time.perf_counter() - started
'''}
VENDOR_LOOP = {
    "pte": r'''
from targets.llm.runner_loop import generate
for _ in range(runs + 1):
    r = generate(folder / "model.pte", folder / "tokenizer.json", text, tokens)
    rates.append(r.decode_tokens_per_s)
''',
    "tflite": r'''
import tempfile, litert_lm
from litert_lm import interfaces
litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)
engine = litert_lm.Engine(str(folder / "model.litertlm"), backend=interfaces.CPU(thread_count=threads),
                          max_num_tokens=len(engine_ids) + tokens, cache_dir=tempfile.mkdtemp(), enable_benchmark=True)
for _ in range(runs + 1):
    with engine.create_session(apply_prompt_template=False, sampler_config=interfaces.SamplerConfig(top_k=1)) as s:
        s.run_prefill([text]); s.run_decode()
        rates.append(s.get_benchmark_info().last_decode_tokens_per_second)
''',
    "onnx": r'''
import numpy as np, onnxruntime_genai as og
config = og.Config(str(folder))
config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}}))
model = og.Model(config)
for _ in range(runs + 1):
    params = og.GeneratorParams(model); params.set_search_options(max_length=len(ids) + tokens, do_sample=False)
    g = og.Generator(model, params); g.append_tokens(np.array([ids], np.int32)); steps = []
    while not g.is_done():
        t = time.perf_counter(); g.generate_next_token(); steps.append(time.perf_counter() - t)
    rates.append((len(steps) - 1) / sum(steps[1:]))
'''}
LOOP_PRELUDE = ("import json, sys, time; from pathlib import Path; folder = Path(sys.argv[1]); "
                "ids = json.loads(sys.argv[2]); text = sys.argv[3]; tokens = int(sys.argv[4]); "
                "threads = int(sys.argv[5]); runs = int(sys.argv[6]); engine_ids = ids; rates = []\n")
RUNNERS = {"pte": "targets.runners.executorch_decoder:ExecutorchDecoderRunner",
           "tflite": "targets.runners.litert_decoder:LitertDecoderRunner",
           "onnx": "targets.runners.genai_decoder:GenaiDecoderRunner"}
EDGEPIPE_RATE = (
    "import importlib, json, sys, numpy as np; from pathlib import Path; from edge_pipeline.host import host_cores; "
    "from edge_pipeline.measure.generation_stage import decode_rate; module, cls = sys.argv[1].split(':'); "
    "runner = getattr(importlib.import_module(module), cls)(); "
    "s = runner.open_decoder(Path(sys.argv[2]), host_cores()); "
    "print(json.dumps(decode_rate(s, np.array(json.loads(sys.argv[3])), int(sys.argv[4]))[0]))")


def last_json(args: list[str], env: dict | None = None) -> object:
    out = subprocess.run(args, capture_output=True, text=True, check=True, env=env).stdout.strip().splitlines()
    return json.loads(out[-1])


def vendor_rate(fmt: str, folder: Path, ids: list[int], text: str, tokens: int, threads: int) -> float:
    """The vendor's own loop by hand in a fresh process: median decode tokens/s of RUNS runs after a warm-up."""
    code = LOOP_PRELUDE + VENDOR_LOOP[fmt] + "print(json.dumps(rates[1:]))"
    rates = last_json([sys.executable, "-c", code, str(folder), json.dumps(ids), text, str(tokens), str(threads),
                       str(RUNS)])
    return statistics.median(rates)


def interleaved(fmt: str, folder: Path, ids: list[int], text: str, tokens: int) -> tuple[float, float]:
    """edgepipe's measurement (a fresh process) and the vendor's loop by hand, alternating, so that the machine's
    drift falls on both alike; medians of each side."""
    ours, theirs = [], []
    for _ in range(ROUNDS):
        ours.append(float(last_json([sys.executable, "-c", EDGEPIPE_RATE, RUNNERS[fmt], str(folder), json.dumps(ids),
                                     str(tokens)])))
        theirs.append(vendor_rate(fmt, folder, ids, text, tokens, os.cpu_count() or 1))
    return statistics.median(ours), statistics.median(theirs)


def build(work: Path, target: str, env: dict) -> tuple[dict, float]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edge_pipeline", "build", "--target", target, "--example", "tiny-lm",
                           "--out", str(work / "out"), "--json"], cwd=work, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout), time.perf_counter() - started


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-llm-"))
    env = {**os.environ, "EDGEPIPE_CACHE_DIR": str(work / "cache")}
    android, android_s = build(work, "android", env)
    board, board_s = build(work, "linux-arm64", env)       # its LiteRT artifacts come from the cache
    vendor = {}
    for fmt, body in VENDOR_EXPORT.items():
        out = work / f"vendor-{fmt}"
        out.mkdir()
        code = ("import json, sys, time; from pathlib import Path; out = Path(sys.argv[1]); times = {}\n" + body
                + "print(json.dumps(times))")
        vendor[fmt] = last_json([sys.executable, "-c", code, str(out)], env)
    from targets.examples.tiny_lm import PROMPT_TOKENS, windows
    from targets.llm import tiny_lm

    tokenizer = tiny_lm.train_tokenizer(tiny_lm.corpus().train)
    prompt = [int(t) for t in windows(tokenizer.encode(tiny_lm.corpus().evaluation).ids, 1)[0][:PROMPT_TOKENS]]
    text = tokenizer.decode(prompt)
    rows = []
    for report, where in ((android, "android"), (board, "linux-arm64")):
        for art in report["artifacts"]:
            fmt, precision = art["format"], art["precision"]
            if where == "linux-arm64" and fmt == "tflite":
                continue                                   # measured once, in the android build
            folder, g = work / "out" / where / art["path"], art["generation"]
            ours, theirs = interleaved(fmt, folder, prompt, text, g["decode_tokens_timed"])
            rows.append({
                "artifact": f"{fmt}:{precision}", "target": where, "size_kb": round(art["size_bytes"] / 1024, 1),
                "edgepipe_export_s": round(art["export"]["seconds"], 1),
                "vendor_export_s": round(vendor[fmt][precision], 1),
                "export_ratio": round(art["export"]["seconds"] / vendor[fmt][precision], 2),
                "edgepipe_decode_tps": ours, "vendor_loop_decode_tps": theirs, "decode_ratio": round(ours / theirs, 3),
                "report_decode_tps": g["decode_tokens_per_s"], "runtime_loop": g["runtime_loop"],
                "ttft_ms": g["ttft_ms"], "prefill_tps": g["prefill_tokens_per_s"],
                "token_agreement": g["token_agreement"], "perplexity": g["perplexity"],
                "source_perplexity": g["source_perplexity"], "ppl_increase_pct": g["perplexity_increase_pct"],
                "first_divergence": g["first_divergence"], "measured_on": g["measured_on"],
                "load_1min": round(os.getloadavg()[0], 2)})
            print(rows[-1], flush=True)
    lines = ["# tiny-lm: edgepipe build vs each vendor's LLM path called by hand, one run", "",
             f"Whole builds, cold cache: android {android_s:.0f} s (training included), linux-arm64 {board_s:.0f} s "
             "(its LiteRT artifacts cached). Export seconds: from the trained model to the written artifact "
             "(edgepipe: its report's per-artifact export time). Decode tokens/s: edgepipe's measurement (its own "
             "code, a fresh process) against the vendor's own loop by hand on the file edgepipe shipped, the same "
             f"prompt and number of tokens, all cores, {ROUNDS} alternating rounds of {RUNS} runs, medians. This "
             "2-core x86_64 host, not a phone.", "",
             "| artifact | size KB | export s edgepipe / vendor (ratio) | decode tok/s edgepipe / vendor loop (ratio) "
             "| vendor loop | TTFT ms | prefill tok/s | token agreement | ppl (source) | ppl +% | first divergence |",
             "|---|---:|---|---|---|---:|---:|---:|---|---:|---|"]
    for r in rows:
        lines.append(f"| {r['artifact']} | {r['size_kb']} | {r['edgepipe_export_s']} / {r['vendor_export_s']} "
                     f"({r['export_ratio']}) | {r['edgepipe_decode_tps']:.0f} / {r['vendor_loop_decode_tps']:.0f} "
                     f"({r['decode_ratio']}) | {r['runtime_loop']} | {r['ttft_ms']} | {r['prefill_tps']} | "
                     f"{r['token_agreement']} | {r['perplexity']} ({r['source_perplexity']}) | "
                     f"{r['ppl_increase_pct']} | {r['first_divergence']} |")
    save("llm", rows, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
