"""Language models through LiteRT's and ONNX Runtime GenAI's own LLM paths (issue 21): a board build of the tiny
example gives a `.litertlm` bundle (prefill/decode signatures, LiteRT-LM's engine) and a GenAI folder (the model
builder, GenAI's generator), float and quantized, each judged token by token in its own runtime. Broken
artifacts are refused by the tier that should catch them; the bundle is the same bytes twice."""
from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_pipeline.errors import ConfigError, InputError
from edge_pipeline.fsutil import sha256_artifact
from edge_pipeline.plugins import Runner
from targets.llm.genai_export import export_genai
from targets.llm.litert_export import export_litert_decoder
from targets.llm.litert_stepping import LitertDecoder
from targets.llm.litertlm_file import decoder_tflite
from targets.runners.genai_decoder import GenaiDecoderRunner
from targets.runners.litert_decoder import LitertDecoderRunner

from .conftest import run_cli
from .llm_reference import measure, reference  # noqa: F401  (a fixture)

pytestmark = pytest.mark.slow
FILES = {"tflite": ["generation.json", "model.litertlm"],
         "onnx": ["genai_config.json", "generation.json", "model.onnx", "model.onnx.data", "tokenizer.json",
                  "tokenizer_config.json"]}
LOOPS = {"tflite": "LiteRT-LM engine", "onnx": "ONNX Runtime GenAI generator"}


@pytest.fixture(scope="module")
def board_build(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("lm-board")
    proc = run_cli("build", "--target", "linux-arm64", "--example", "tiny-lm", "--out", str(out), cwd=out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "linux-arm64" / "report.json").read_text())
    return {"out": out / "linux-arm64", "artifacts": {f"{a['format']}:{a['precision']}": a
                                                       for a in report["artifacts"]}, "report": report}


def folder_of(build: dict, label: str) -> Path:
    return build["out"] / build["artifacts"][label]["path"]


def test_a_board_gets_litert_and_genai_artifacts_each_judged_in_its_own_runtime(board_build: dict) -> None:
    found = board_build["artifacts"]
    assert board_build["report"]["status"] == "passed"
    assert set(found) == {"tflite:fp32", "tflite:int8-dynamic", "onnx:fp32", "onnx:int4"}
    for label, art in found.items():
        path = folder_of(board_build, label)
        assert sorted(p.name for p in path.iterdir()) == FILES[art["format"]], label   # nothing the runtime left
        assert sha256_artifact(path) == art["sha256"]
        g = art["generation"]
        assert g["runtime_loop"] == LOOPS[art["format"]] and g["runtime_loop_matches"] is True
        assert LOOPS[art["format"]] in g["measured_on"] and "host-emulated linux-arm64" in g["measured_on"]
        assert g["decode_tokens_per_s"] > 0 and g["ttft_ms"] > 0
    for label in ("tflite:fp32", "onnx:fp32"):
        g = found[label]["generation"]
        assert g["token_agreement"] == 1.0 and g["first_divergence"] == [None] * 8 and g["worst_logit_sqnr_db"] > 60
    assert found["tflite:int8-dynamic"]["generation"]["token_agreement"] >= 0.95
    assert found["onnx:int4"]["generation"]["token_agreement"] >= 0.85
    assert found["onnx:int4"]["export"]["metadata"]["quantization"]["scheme"].endswith("output projection float)")
    signatures = found["tflite:fp32"]["export"]["metadata"]["signatures"]
    assert signatures == ["prefill_32", "decode"]
    config = json.loads((folder_of(board_build, "onnx:int4") / "genai_config.json").read_text())
    assert config["model"]["eos_token_id"] == [2] and config["model"]["context_length"] == 128


def test_the_litert_bundle_is_the_same_bytes_twice_and_steps_its_own_tflite(reference: dict, board_build: dict,
                                                                             tmp_path: Path) -> None:
    built = folder_of(board_build, "tflite:fp32") / "model.litertlm"
    again = tmp_path / "again.litertlm"
    export_litert_decoder(reference["model"].module, again)
    assert again.read_bytes() == built.read_bytes()                     # no random uuid, no clock inside
    from ai_edge_litert.interpreter import Interpreter

    program = decoder_tflite(built)
    signatures = Interpreter(model_content=program).get_signature_list()
    assert set(signatures) == {"prefill_32", "decode"}
    assert {n for n in signatures["decode"]["inputs"] if n.startswith("kv_cache")} == \
        {n for n in signatures["decode"]["outputs"] if n.startswith("kv_cache")} != set()
    assert program in built.read_bytes()            # what is stepped is byte for byte what the engine loads
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "model.litertlm").write_bytes(b"LITERTLM" + b"\xff" * 64)
    with pytest.raises(InputError, match="model.litertlm"):
        LitertDecoderRunner().open_decoder(tmp_path / "junk", 1)


def export_litert(source: object, folder: Path) -> None:
    export_litert_decoder(source, folder / "model.litertlm")


def export_onnx(source: object, folder: Path) -> None:
    export_genai(source, folder, "fp32")


ROUTES: dict[str, tuple[Callable[[object, Path], None], type[Runner], str]] = {
    "tflite": (export_litert, LitertDecoderRunner, "int8-dynamic"), "onnx": (export_onnx, GenaiDecoderRunner, "int4")}


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_a_corrupted_weight_scale_is_refused_in_every_runtime(route: str, reference: dict, tmp_path: Path) -> None:
    export, runner, quantized = ROUTES[route]
    source = copy.deepcopy(reference["model"].module)     # a shallow copy would share (and corrupt) its lm
    with torch.no_grad():
        source.lm.model.layers[1].mlp.down_proj.weight.mul_(8.0)     # one layer's scale 8x off
    folder = tmp_path / "corrupt"
    folder.mkdir()
    export(source, folder)
    verdict = measure(reference, folder, "fp32", runner())
    assert not verdict.passed and verdict.validation.decided_by == "tier 1: greedy tokens"
    assert re.fullmatch(r"tier 1: the greedy continuation of prompt \d differs from the source's at token \d+",
                        verdict.validation.message), verdict.validation.message
    assert not measure(reference, folder, quantized, runner()).passed


def test_a_litert_cache_that_is_not_carried_is_refused_by_tier_1(reference: dict, board_build: dict) -> None:
    class FrozenCache(LitertDecoder):
        def _decode(self, token: int, position: int, cache: dict) -> np.ndarray:
            return super()._decode(token, position, dict(cache))        # the cache it returns is dropped

    class FrozenRunner(LitertDecoderRunner):
        def open_decoder(self, path: Path, threads: int) -> LitertDecoder:
            return FrozenCache(path / "model.litertlm", threads)

    artifact = folder_of(board_build, "tflite:fp32")
    assert measure(reference, artifact, "fp32", LitertDecoderRunner()).passed
    verdict = measure(reference, artifact, "fp32", FrozenRunner())
    assert not verdict.passed and verdict.validation.decided_by == "tier 1: greedy tokens"


@pytest.mark.parametrize("label", ["tflite:fp32", "onnx:fp32"])
def test_eos_ids_that_disagree_with_the_runtimes_own_are_refused(label: str, reference: dict, board_build: dict,
                                                                 tmp_path: Path) -> None:
    folder = tmp_path / "eos"
    shutil.copytree(folder_of(board_build, label), folder)
    (folder / "generation.json").write_text(json.dumps({"eos_ids": [3]}))
    runner = ROUTES[label.split(":")[0]][1]()
    with pytest.raises(InputError, match=r"declares EOS ids \[2\] but .*generation.json lists \[3\]"):
        measure(reference, folder, "fp32", runner)


def test_a_genai_config_naming_a_file_outside_its_folder_or_a_non_object_is_refused(board_build: dict,
                                                                                     tmp_path: Path) -> None:
    folder = tmp_path / "hostile"
    shutil.copytree(folder_of(board_build, "onnx:fp32"), folder)
    config = json.loads((folder / "genai_config.json").read_text())
    config["model"]["decoder"]["filename"] = "../../outside.onnx"
    (folder / "genai_config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="filename '../../outside.onnx' must be a plain file name"):
        GenaiDecoderRunner().open_decoder(folder, 1)
    shutil.copyfile(folder_of(board_build, "onnx:fp32") / "genai_config.json", folder / "genai_config.json")
    (folder / "generation.json").write_text("[2]")
    with pytest.raises(InputError, match="generation file .* is not a JSON object"):
        GenaiDecoderRunner().open_decoder(folder, 1)


def test_a_chat_template_the_engine_renders_otherwise_is_refused_by_tier_3(reference: dict, tmp_path: Path) -> None:
    """ChatML that reads a message's content as a string only: LiteRT-LM hands the template a list of text parts,
    so an app's chat would feed the model `[{"type": "text", ...}]` where the source had the question."""
    from edge_pipeline.datafiles import load_outputs, save_outputs
    from edge_pipeline.tensors import Tensors
    from targets.llm.chat import as_codes, source_rendering

    template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    source = copy.deepcopy(reference["model"].module)
    source.chat_template = template
    folder = tmp_path / "chat"
    folder.mkdir()
    export_litert_decoder(source, folder / "model.litertlm")
    (folder / "chat_template.jinja").write_text(template)
    outputs = load_outputs(reference["folder"] / "reference.npz").as_dict()
    outputs["chat_prompt"] = as_codes(source_rendering(source.tokenizer_json, template))
    shutil.copytree(reference["folder"] / "data", tmp_path / "data")
    save_outputs(tmp_path / "reference.npz", Tensors(tuple(outputs), tuple(outputs.values())))
    verdict = measure({"folder": tmp_path, "model": reference["model"]}, folder, "fp32", LitertDecoderRunner())
    assert not verdict.passed and verdict.validation.decided_by == "tier 3: chat template"
    assert "renders the chat template as '<|im_start|>user\\n[{" in verdict.validation.message
    assert verdict.generation.chat_template_matches is False


def test_the_board_chat_bundle_reproduces_each_models_continuation_in_a_fresh_venv(board_build: dict,
                                                                                   tmp_path: Path) -> None:
    report = board_build["report"]
    assert report["bundle"]["template"] == "linux-chat" and len(report["bundle"]["chat_models"]) == 4
    archive = board_build["out"] / report["bundle"]["zip"]
    with zipfile.ZipFile(archive) as zf:
        assert all(".." not in n for n in zf.namelist())
        zf.extractall(tmp_path / "app")
    app = next(p for p in (tmp_path / "app").rglob("chat.py")).parent
    chat = json.loads((app / "chat.json").read_text())
    assert {m["name"] for m in chat["models"]} == set(board_build["artifacts"])
    assert all(m["expected"] == board_build["artifacts"][m["name"]]["generation"]["sample_continuation"]
               for m in chat["models"])
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-r", str(app / "requirements.txt")],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    python = str(venv / "bin" / "python")
    run = subprocess.run([python, str(app / "chat.py"), "--check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(results) == set(board_build["artifacts"]) and all(r["matches"] for r in results.values())
    said = subprocess.run([python, str(app / "chat.py"), "--model", "onnx:int4", "--prompt", "The class statement",
                           "--max-tokens", "8"], capture_output=True, text=True)
    assert said.returncode == 0 and said.stdout.strip(), said.stdout + said.stderr


def test_group_size_reaches_the_4_bit_quantizer_that_offers_it(cache_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "edgepipe.toml").write_text('example = "tiny-lm"\n[quantization]\ngroup-size = 64\n'
                                            '[targets.linux-arm64]\nformats = ["onnx:int4"]\n')
    proc = run_cli("build", "--target", "linux-arm64", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (artifact,) = json.loads((tmp_path / "out" / "linux-arm64" / "report.json").read_text())["artifacts"]
    assert artifact["export"]["metadata"]["quantization"]["block_size"] == 64
    assert artifact["generation"]["token_agreement"] >= 0.85
    (tmp_path / "edgepipe.toml").write_text('example = "tiny-lm"\n[quantization]\ngroup-size = 16\n'
                                            '[targets.android]\nformats = ["pte:8da4w"]\n')
    proc = run_cli("build", "--target", "android", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2 and "quantization.group-size 16 not offered for pte:8da4w" in proc.stderr
    (tmp_path / "edgepipe.toml").write_text('example = "tiny-lm"\n[quantization]\ngroup-size = 48\n')
    proc = run_cli("build", "--target", "android", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2 and "'quantization.group-size' must be one of: 16, 32, 64, 128, 256" in proc.stderr
