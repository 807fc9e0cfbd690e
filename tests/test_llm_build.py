"""Language models through `edgepipe build` (issue 21): the tiny example goes to `.pte` fp32 and 8da4w, each
judged token by token against the source in ExecuTorch's runtime and through its own LLM runner, measured in
TTFT and tokens/s, and gated on those. Broken artifacts are refused by the tier that should catch them, with the
prompt and the token position named."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import torch

from edge_pipeline.fsutil import sha256_artifact
from edge_pipeline.types import TEXT_GENERATION
from targets.llm import pte_export
from targets.llm.stepping import PteDecoder
from targets.runners.executorch_decoder import ExecutorchDecoderRunner

from .conftest import run_cli
from .llm_reference import measure, reference  # noqa: F401  (a fixture)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lm_build(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("lm-out")
    proc = run_cli("build", "--target", "android", "--example", "tiny-lm", "--out", str(out), cwd=out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"out": out / "android", "report": json.loads((out / "android" / "report.json").read_text()),
            "stdout": proc.stdout}


def artifacts(report: dict) -> dict[str, dict]:
    return {f"{a['format']}:{a['precision']}": a for a in report["artifacts"]}


FILES = {"pte": ["generation.json", "model.pte", "tokenizer.json"], "tflite": ["generation.json", "model.litertlm"]}
LOOPS = {"pte": "TextLLMRunner", "tflite": "LiteRT-LM engine"}


def test_the_example_builds_every_decoder_artifact_and_reports_what_an_app_feels(lm_build: dict) -> None:
    report, folder = lm_build["report"], lm_build["out"]
    assert report["status"] == "passed" and report["source"]["task"] == TEXT_GENERATION
    found = artifacts(report)
    assert set(found) == {"pte:fp32", "pte:8da4w", "tflite:fp32", "tflite:int8-dynamic"}
    for label, art in found.items():
        path = folder / art["path"]
        assert sorted(p.name for p in path.iterdir()) == FILES[art["format"]], label   # nothing the runtime left
        assert sha256_artifact(path) == art["sha256"]
        declared = json.loads((path / "generation.json").read_text())
        assert declared["max_context"] == 128 and declared["eos_ids"] == [2]
        g = art["generation"]
        for key in ("ttft_ms", "prefill_tokens_per_s", "decode_tokens_per_s", "decode_tokens_per_s_stepping",
                    "load_ms"):
            assert g[key] > 0, (label, key)
        assert set(g["ttft_ms_by_prompt_tokens"]) == {"16", "64"} and g["runtime_loop_matches"] is True
        assert "host-emulated android" in g["measured_on"] and LOOPS[art["format"]] in g["measured_on"]
        assert g["windows"] == 8 and g["positions"] == 512 and len(g["first_divergence"]) == 8
    assert PteDecoder(folder / found["pte:fp32"]["path"] / "model.pte").eos_ids == (2,)
    for float_label in ("pte:fp32", "tflite:fp32"):
        fp32 = found[float_label]["generation"]
        assert fp32["token_agreement"] == 1.0 and fp32["first_divergence"] == [None] * 8
        assert abs(fp32["perplexity_increase_pct"]) < 0.01 and fp32["worst_logit_sqnr_db"] > 60
    four_bit, eight_bit = found["pte:8da4w"]["generation"], found["tflite:int8-dynamic"]["generation"]
    assert 0.85 <= four_bit["token_agreement"] < 1.0 and four_bit["perplexity_increase_pct"] < 10
    assert 0.95 <= eight_bit["token_agreement"] < 1.0 and abs(eight_bit["perplexity_increase_pct"]) < 2
    assert found["pte:8da4w"]["size_bytes"] < 0.5 * found["pte:fp32"]["size_bytes"]
    assert found["tflite:int8-dynamic"]["size_bytes"] < 0.6 * found["tflite:fp32"]["size_bytes"]
    assert found["pte:fp32"]["generation"]["source_perplexity"] < 512 / 4   # trained: far better than guessing
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).resolve().parents[1] / "edge_pipeline" / "schemas" / "report.schema.json")
                        .read_text())
    jsonschema.validate(report, schema)
    markdown = (folder / "report.md").read_text()
    assert "## Language model" in markdown and "TextLLMRunner" in markdown and "LiteRT-LM engine" in markdown
    assert "decode tok/s" in lm_build["stdout"] and "token agreement" in lm_build["stdout"]


def test_language_model_budgets_gate_the_build(lm_build: dict, tmp_path: Path) -> None:
    out = tmp_path      # the build is cached: only the gate differs
    proc = run_cli("build", "--target", "android", "--example", "tiny-lm", "--out", str(out),
                   "--budget", "min-decode-tps=1000000", "--budget", "max-ppl-increase-pct=50", cwd=out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads((out / "android" / "report.json").read_text())
    failed = [c for c in report["checks"] if not c["passed"]]
    assert {c["metric"] for c in failed} == {"decode_tokens_per_s"} and len(failed) == 4
    assert all(c["passed"] for c in report["checks"] if c["metric"] == "ppl_increase_pct")
    proc = run_cli("build", "--target", "android", "--example", "tiny-lm", "--out", str(out),
                   "--budget", "min-token-agreement=1.5", cwd=out)
    assert proc.returncode == 2 and "min-token-agreement" in proc.stderr
    proc = run_cli("build", "--target", "web", "--example", "tiny-lm", "--out", str(out), cwd=out)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "'tfjs:fp32' has no exporter for text-generation models (formats that export them: onnx, pte, tflite)" \
        in proc.stderr


def test_a_baseline_compares_token_agreement_and_time_per_token(lm_build: dict, tmp_path: Path) -> None:
    report = lm_build["out"] / "report.json"
    proc = run_cli("gate", str(report), "--baseline", str(report), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    messages = [c["message"] for c in json.loads(proc.stdout)["checks"]]
    assert any("pte:8da4w: token agreement" in m and "+0.00 pt" in m for m in messages), messages
    assert any("pte:8da4w: decode time per token" in m for m in messages), messages
    worse = json.loads(report.read_text())
    for art in worse["artifacts"]:
        art["generation"]["token_agreement"] -= 0.05          # 5 pt worse than the baseline
    (tmp_path / "worse.json").write_text(json.dumps(worse))
    proc = run_cli("gate", str(tmp_path / "worse.json"), "--baseline", str(report))
    assert proc.returncode == 1 and "token agreement" in proc.stdout + proc.stderr


def export_folder(lm: object, folder: Path, reference: dict, eos: tuple[int, ...] | None = None) -> Path:
    source = reference["model"].module
    folder.mkdir()
    metadata = pte_export.DecoderMetadata(source.max_context, 512, source.bos_id, eos or source.eos_ids)
    pte_export.export_decoder(lm, folder / "model.pte", metadata)
    (folder / "tokenizer.json").write_text(source.tokenizer_json)
    return folder


def test_a_corrupted_weight_scale_is_refused_by_tier_1_in_float_and_tier_2_quantized(reference: dict,
                                                                                     tmp_path: Path) -> None:
    lm = copy.deepcopy(reference["model"].module.lm)
    with torch.no_grad():
        lm.model.layers[1].mlp.down_proj.weight.mul_(8.0)     # one layer's scale 8x off
    folder = export_folder(lm, tmp_path / "corrupt", reference)
    float_verdict = measure(reference, folder, "fp32")
    assert not float_verdict.passed
    assert float_verdict.validation.message.startswith("tier 1: the greedy continuation of prompt ")
    assert "differs from the source's at token" in float_verdict.validation.message
    quantized_verdict = measure(reference, folder, "8da4w")
    assert not quantized_verdict.passed and quantized_verdict.validation.decided_by.startswith("tier 2")
    assert quantized_verdict.generation.token_agreement < 0.85
    assert quantized_verdict.generation.ttft_ms is None          # a refused artifact is not timed


def test_a_rotary_position_off_by_one_is_refused_with_the_prompt_and_token(reference: dict, lm_build: dict) -> None:
    class OffByOne(PteDecoder):
        def __init__(self, *args: object) -> None:
            super().__init__(*args)
            call = self.program.call      # decode positions shifted by one
            self.program.call = lambda ids, start: call(ids, start + 1 if start else start)

    class OffByOneRunner(ExecutorchDecoderRunner):
        def open_decoder(self, path: Path, threads: int) -> PteDecoder:
            return OffByOne(path / "model.pte", None, threads)

    artifact = lm_build["out"] / artifacts(lm_build["report"])["pte:fp32"]["path"]
    assert measure(reference, artifact, "fp32").passed
    verdict = measure(reference, artifact, "fp32", OffByOneRunner())
    assert not verdict.passed and verdict.validation.decided_by == "tier 1: greedy tokens"
    assert re.fullmatch(r"tier 1: the greedy continuation of prompt \d differs from the source's at token \d+",
                        verdict.validation.message), verdict.validation.message


def test_eos_ids_that_disagree_between_the_program_and_its_folder_are_refused(reference: dict, lm_build: dict,
                                                                              tmp_path: Path) -> None:
    built = lm_build["out"] / artifacts(lm_build["report"])["pte:fp32"]["path"]
    folder = tmp_path / "eos"
    folder.mkdir()
    for name in ("model.pte", "tokenizer.json"):
        (folder / name).write_bytes((built / name).read_bytes())
    (folder / "generation.json").write_text(json.dumps({"eos_ids": [3]}))
    with pytest.raises(Exception, match=r"declares EOS ids \[2\] but .*generation.json lists \[3\]"):
        measure(reference, folder, "fp32")



def test_the_android_chat_bundle_holds_what_its_app_opens_and_the_runner_reproduces_it(lm_build: dict,
                                                                                       tmp_path: Path) -> None:
    """The app cannot be compiled here; what it reads can be checked, and its one call (ExecuTorch's LLM runner on
    the recorded prompt, seq_len, temperature 0, no echo) made on this host with the runner the Android library
    wraps: the text must begin with the continuation validation recorded."""
    import zipfile

    from executorch.extension.llm.runner import GenerationConfig, TextLLMRunner

    report = lm_build["report"]
    assert report["bundle"]["template"] == "android-chat"
    with zipfile.ZipFile(lm_build["out"] / report["bundle"]["zip"]) as zf:
        assert all(".." not in n for n in zf.namelist())
        zf.extractall(tmp_path / "app")
    root = next(p for p in (tmp_path / "app").rglob("settings.gradle.kts")).parent
    assets = root / "app" / "src" / "main" / "assets"
    chat = json.loads((assets / "chat.json").read_text())
    assert {m["name"] for m in chat["models"]} == {"pte:fp32", "pte:8da4w"}   # LiteRT-LM runs in the Linux app
    kotlin = (root / "app/src/main/java/dev/edgepipe/chat/ChatActivity.kt").read_text()
    assert all(f'"{key}"' in kotlin for key in ("target", "models", "name", "model", "tokenizer", "prompt",
                                                 "seq_len", "expected"))
    properties = (root / "gradle.properties").read_text()
    assert f"edgepipe.executorchVersion={report['tool_versions']['executorch']}" in properties
    assert not [p for p in root.rglob("*") if p.is_file() and p.suffix in (".kts", ".properties", ".kt")
                and "@EXECUTORCH_VERSION@" in p.read_text()]
    recorded = artifacts(report)
    for model in chat["models"]:
        assert model["expected"] == recorded[model["name"]]["generation"]["sample_continuation"] != ""
        runner = TextLLMRunner(str(assets / model["model"]), str(assets / model["tokenizer"]))
        pieces: list[str] = []
        runner.generate(model["prompt"], GenerationConfig(echo=False, seq_len=model["seq_len"], temperature=0.0),
                        token_callback=pieces.append)
        assert "".join(pieces).startswith(model["expected"]), (model["name"], "".join(pieces), model["expected"])
