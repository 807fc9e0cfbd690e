"""Language models a user brings (issue 21): a local Hugging Face folder (a Qwen2 with grouped-query attention
saved in bfloat16, randomly initialised: real transformers classes, nothing downloaded) and a factory returning a
Llama and its tokenizer, each taken through `edgepipe build --target android` to a `.pte` that passes every tier.
What cannot be built is refused before any export: one line naming it, exit 2."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run_cli

pytestmark = pytest.mark.slow
FLOAT_ONLY = '\n[targets.android]\nformats = ["pte:fp32"]\n'
# ChatML, reading a message's content as a string or as a list of text parts (how LiteRT-LM passes it)
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}"
          "{% else %}{% for part in m['content'] %}{{ part['text'] }}{% endfor %}{% endif %}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
BOTH_RUNTIMES = '\n[targets.android]\nformats = ["pte:fp32", "tflite:fp32"]\n'


def tokenizer():
    from targets.llm import tiny_lm

    return tiny_lm.train_tokenizer(tiny_lm.corpus().train[:60_000])


def evaluation_text() -> str:
    from targets.llm import tiny_lm

    return tiny_lm.corpus().evaluation[:12_000]


@pytest.fixture(scope="module")
def qwen_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    project = tmp_path_factory.mktemp("qwen")
    tok = tokenizer()
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=tok.token_to_id("<s>"), eos_token_id=tok.token_to_id("</s>"))
    Qwen2ForCausalLM(config).to(torch.bfloat16).save_pretrained(project / "model", safe_serialization=True)
    tok.save(str(project / "model" / "tokenizer.json"))
    (project / "model" / "chat_template.jinja").write_text(CHATML)
    (project / "eval.txt").write_text(evaluation_text())
    return project


def build(project: Path, toml: str) -> tuple[int, str, dict | None]:
    (project / "edgepipe.toml").write_text(toml)
    proc = run_cli("build", "--target", "android", "--out", str(project / "out"), cwd=project)
    report = project / "out" / "android" / "report.json"
    return proc.returncode, proc.stdout + proc.stderr, json.loads(report.read_text()) if report.is_file() else None


def test_a_bfloat16_qwen_folder_with_grouped_query_attention_builds(qwen_folder: Path, cache_dir: Path) -> None:
    code, output, report = build(qwen_folder, 'model = "model"\nevaluation-text = "eval.txt"\nmax-context = 128\n'
                                 'prefill-lengths = [16, 48]\n' + BOTH_RUNTIMES)
    assert code == 0, output
    assert report["source"]["task"] == "text-generation"
    provenance = report["source"]["provenance"]
    assert provenance["architecture"] == "qwen2" and provenance["weights_dtype"] == "bfloat16 loaded as float32"
    assert [a["format"] for a in report["artifacts"]] == ["pte", "tflite"]
    for artifact in report["artifacts"]:           # ExecuTorch's LLM path and LiteRT's, each in its own runtime
        generation = artifact["generation"]
        assert artifact["status"] == "ok" and generation["token_agreement"] == 1.0
        assert generation["first_divergence"] == [None] * generation["prompts"]
        assert generation["runtime_loop_matches"]
        folder = qwen_folder / "out" / "android" / artifact["path"]
        declared = json.loads((folder / "generation.json").read_text())
        assert declared["max_context"] == 128 and declared["eos_ids"] == [2]
        assert (folder / "chat_template.jinja").read_text() == CHATML          # shipped beside the model
        # LiteRT-LM renders the template it ships as transformers does; ExecuTorch's runner renders none
        assert generation["chat_template_matches"] is (True if artifact["format"] == "tflite" else None)
    litert = report["artifacts"][1]["export"]["metadata"]
    assert litert["signatures"] == ["prefill_16", "prefill_48", "decode"] and litert["prefill_lengths"] == [16, 48]


def test_4_bit_variants_are_searched_on_the_shipped_file_until_one_holds(qwen_folder: Path) -> None:
    """A random model's nearly tied logits flip under plain 4-bit rounding: each variant is tried on the `.pte`
    that would ship and reported; GPTQ's calibrated rounding is the first to hold, and it is the one shipped."""
    code, output, report = build(qwen_folder, 'model = "model"\nevaluation-text = "eval.txt"\nmax-context = 128\n'
                                 '\n[targets.android]\nformats = ["pte:8da4w"]\n')
    assert code == 0, output
    (artifact,) = report["artifacts"]
    variants = artifact["export"]["metadata"]["quantization"]["variants"]
    assert [v["variant"] for v in variants] == ["int4 g32, min-max scales (torchao default)", "int4 g32, HQQ scales",
                                                "int4 g32, HQQ scales, GPTQ rounding (calibrated)"]
    plain, gptq = variants[:2], variants[2]
    assert not any(v["holds"] for v in plain) and all(0 < v["token_agreement"] < 0.85 for v in plain)
    assert gptq["holds"] and gptq["token_agreement"] > max(v["token_agreement"] for v in plain)
    assert "GPTQ" in artifact["export"]["metadata"]["quantization"]["scheme"]
    shipped = artifact["generation"]["token_agreement"]
    assert abs(shipped - gptq["token_agreement"]) < 0.01, (shipped, variants)    # the variant that held ships


def test_a_gguf_file_builds_from_its_own_tokenizer_and_dequantized_weights(tmp_path: Path, cache_dir: Path) -> None:
    """A Q8_0 GGUF file laid out as llama.cpp writes one: the source is its dequantized weights and the tokenizer
    rebuilt from its metadata, and both runtimes' artifacts match that source token for token."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from edge_pipeline.types import SourceSpec
    from targets.sources.gguf_source import GgufSource

    from .gguf_file import write_gguf

    tok = tokenizer()
    (tmp_path / "eval.txt").write_text(evaluation_text())
    torch.manual_seed(2)
    config = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         bos_token_id=tok.token_to_id("<s>"), eos_token_id=tok.token_to_id("</s>"),
                         tie_word_embeddings=False)
    original = LlamaForCausalLM(config).eval()
    write_gguf(original, tok, tmp_path / "tiny.Q8_0.gguf", chat_template=CHATML)
    loaded, _ = GgufSource().load_file(SourceSpec(base_dir=str(tmp_path), evaluation_text="eval.txt"),
                                       tmp_path / "tiny.Q8_0.gguf")
    ids = torch.tensor([tok.encode(evaluation_text()[:300]).ids])
    with torch.no_grad():      # the dequantized source is the model the file was written from, to Q8_0 precision
        want, got = original(ids).logits, loaded.module.lm(ids).logits
    assert 10 * torch.log10(want.pow(2).mean() / (want - got).pow(2).mean()) > 30
    code, output, report = build(tmp_path, 'model = "tiny.Q8_0.gguf"\nevaluation-text = "eval.txt"\n'
                                 'prefill-lengths = [16]\n' + BOTH_RUNTIMES)
    assert code == 0, output
    provenance = report["source"]["provenance"]
    assert provenance["architecture"] == "llama" and provenance["weights"] == ["tiny.Q8_0.gguf"]
    assert provenance["weights_dtype"].startswith("GGUF Q8_0 x") and "dequantized to float32" in provenance[
        "weights_dtype"]
    for artifact in report["artifacts"]:
        generation = artifact["generation"]
        assert artifact["status"] == "ok" and generation["token_agreement"] == 1.0, artifact["validation"]
        assert generation["first_divergence"] == [None] * generation["prompts"]
        folder = tmp_path / "out" / "android" / artifact["path"]
        assert json.loads((folder / "generation.json").read_text())["eos_ids"] == [tok.token_to_id("</s>")]
        assert (folder / "chat_template.jinja").read_text() == CHATML       # the template the file carries
    litert = next(a for a in report["artifacts"] if a["format"] == "tflite")
    assert litert["generation"]["chat_template_matches"] is True
    # the tokenizer rebuilt from the file reads text as the one it was written from
    from targets.llm import tiny_lm

    sample = tiny_lm.corpus().train[:2000]        # text the vocabulary was trained on: no unknown characters
    assert tok.token_to_id("<unk>") not in tok.encode(sample).ids
    pte = next(a for a in report["artifacts"] if a["format"] == "pte")
    shipped = json.loads((tmp_path / "out" / "android" / pte["path"] / "tokenizer.json").read_text())
    from tokenizers import Tokenizer

    assert Tokenizer.from_str(json.dumps(shipped)).encode(sample).ids == tok.encode(sample).ids


def test_a_decoder_set_to_feature_extraction_builds_as_an_embedding_model(tmp_path: Path, cache_dir: Path) -> None:
    """`task = "feature-extraction"`: a causal LM's base model pools its last hidden states into an embedding,
    judged by retrieval like any encoder (decoder-based embedding models)."""
    (tmp_path / "lm_factory.py").write_text(FACTORY)
    (tmp_path / "eval.txt").write_text(evaluation_text())
    code, output, report = build(tmp_path, 'model = "lm_factory:make_llama"\nevaluation-text = "eval.txt"\n'
                                 'task = "feature-extraction"\n\n[targets.android]\nformats = ["onnx:fp32"]\n')
    assert code == 0, output
    (artifact,) = report["artifacts"]
    assert report["source"]["task"] == "feature-extraction"
    assert [o["name"] for o in report["source"]["outputs"]] == ["embedding"]
    assert artifact["validation"]["metric"] == "retrieval" and artifact["accuracy"] == 1.0


PROMPTS = ["The class statement", "def main():", "Return the value of"]
FACTORY = """
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from targets.llm import tiny_lm


def make_llama():
    tok = tiny_lm.train_tokenizer(tiny_lm.corpus().train[:60_000])
    torch.manual_seed(1)
    config = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=96,
                         bos_token_id=1, eos_token_id=2)
    return LlamaForCausalLM(config), tok
"""


def test_a_factory_returning_a_llama_and_its_tokenizer_builds(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "lm_factory.py").write_text(FACTORY)     # (transformers model, tokenizers.Tokenizer)
    (tmp_path / "eval.txt").write_text(evaluation_text())
    code, output, report = build(tmp_path, 'model = "lm_factory:make_llama"\nevaluation-text = "eval.txt"\n'
                                 f'prompts = {json.dumps(PROMPTS)}\n' + FLOAT_ONLY)
    assert code == 0, output
    (artifact,) = report["artifacts"]
    generation = artifact["generation"]
    assert report["source"]["provenance"]["architecture"] == "llama" and generation["windows"] == 8
    # the user's prompts, not the windows', are continued by the source and stepped through the artifact
    assert generation["prompts"] == len(PROMPTS) and len(generation["first_divergence"]) == len(PROMPTS)
    assert generation["sample_prompt_ids"] == tokenizer().encode(PROMPTS[0]).ids
    assert generation["prompt_tokens"] == len(generation["sample_prompt_ids"]) and generation["runtime_loop_matches"]
    assert json.loads((tmp_path / "out" / "android" / artifact["path"] / "generation.json").read_text())[
        "max_context"] == 96     # the model's own, under the 512 default


def refused(project: Path, toml: str, *expected: str) -> None:
    code, output, _ = build(project, toml)
    assert code == 2, output
    assert "Traceback" not in output and all(text in output for text in expected), output


def test_what_cannot_be_a_language_model_is_refused_before_any_export(qwen_folder: Path, tmp_path: Path,
                                                                      cache_dir: Path) -> None:
    refused(qwen_folder, 'model = "model"\nevaluation-text = "eval.txt"\nmax-context = 4096\n',
            "max-context 4096 is longer than the model's maximum context of 256 tokens")
    refused(qwen_folder, 'model = "model"\nevaluation-text = "eval.txt"\nmax-context = 128\n'
            'prefill-lengths = [32, 128]\n', "prefill-lengths [128] do not fit the context of 128 tokens")
    refused(qwen_folder, 'model = "model"\nevaluation-text = "eval.txt"\nprefill-lengths = [32, 32]\n',
            "'prefill-lengths' must be a list of distinct token counts")
    refused(qwen_folder, 'model = "model"\n', "a language model needs evaluation text: set evaluation-text")
    refused(qwen_folder, 'model = "model"\nevaluation-text = "eval.txt"\nmax-context = 64\n'
            f'prompts = ["ok", {json.dumps("word " * 40)}]\n', "prompts[1] is", "does not fit the context of 64")
    refused(qwen_folder, 'model = "model"\nevaluation-text = "eval.txt"\nprompts = []\n',
            "'prompts' must be a list of 1 to 64 non-blank strings")
    refused(qwen_folder, 'model = "model"\nevaluation-text = "eval.txt"\ntask = "summarization"\n',
            "'task' must be one of text-generation, feature-extraction")
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    refused(tmp_path, 'model = "bert"\nevaluation-text = "eval.txt"\ntask = "text-generation"\n',
            "task = 'text-generation' needs a decoder-only language model; architecture 'bert' is a text encoder")
    refused(qwen_folder, 'model = "model"\nevaluation-text = "../eval.txt"\n', "points outside")
    t5 = tmp_path / "t5"
    t5.mkdir()
    (t5 / "config.json").write_text(json.dumps({"model_type": "t5", "is_encoder_decoder": True}))
    refused(tmp_path, 'model = "t5"\nevaluation-text = "eval.txt"\n',
            "architecture 't5' is neither a decoder-only language model")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((qwen_folder / "model" / "config.json").read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04not unpickled")
    refused(tmp_path, 'model = "pickled"\nevaluation-text = "eval.txt"\n',
            "only pickled weights (pytorch_model.bin), which edgepipe does not unpickle")
    (tmp_path / "fake.gguf").write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 24)
    refused(tmp_path, 'model = "fake.gguf"\nevaluation-text = "eval.txt"\n', "fake.gguf is not a GGUF file")
    (tmp_path / "text.gguf").write_text("not gguf at all")
    refused(tmp_path, 'model = "text.gguf"\nevaluation-text = "eval.txt"\n', "text.gguf is not a GGUF file")
    no_tokenizer = tmp_path / "no-tokenizer"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors"):
        (no_tokenizer / name).write_bytes((qwen_folder / "model" / name).read_bytes())
    refused(tmp_path, 'model = "no-tokenizer"\nevaluation-text = "eval.txt"\n', "missing tokenizer file")
