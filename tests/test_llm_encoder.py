"""Text encoders a user brings (issue 21): a BERT-style encoder in a local Hugging Face folder (real transformers
classes, randomly initialised, nothing downloaded) is a `feature-extraction` model: two int64 inputs, its pooled
embedding as the named output `embedding`, exported like any model and judged by SQNR, cosine and retrieval
agreement (each evaluation sentence's nearest neighbour is the source's), never by an argmax of embeddings."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_pipeline.measure.validate import retrieval_agreement, similarities, validate
from edge_pipeline.precision import Precision
from edge_pipeline.tensors import Tensors

from .conftest import run_cli

pytestmark = pytest.mark.slow
FORMATS = '["pte:fp32", "pte:int8", "tflite:fp32", "tflite:int8", "onnx:fp32", "onnx:int8"]'


@pytest.fixture(scope="module")
def encoder_project(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> dict:
    import torch
    from transformers import BertConfig, BertModel

    from targets.llm import tiny_lm

    project = tmp_path_factory.mktemp("encoder")
    tokenizer = tiny_lm.train_tokenizer(tiny_lm.corpus().train[:60_000])
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=64, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=128, max_position_embeddings=64)
    BertModel(config).to(torch.bfloat16).save_pretrained(project / "encoder", safe_serialization=True)
    tokenizer.save(str(project / "encoder" / "tokenizer.json"))
    (project / "eval.txt").write_text(tiny_lm.corpus().evaluation[:40_000])
    (project / "edgepipe.toml").write_text(f'model = "encoder"\nevaluation-text = "eval.txt"\n\n'
                                           f'[targets.android]\nformats = {FORMATS}\n')
    proc = run_cli("build", "--target", "android", "--out", str(project / "out"), cwd=project)
    report = json.loads((project / "out" / "android" / "report.json").read_text())
    return {"code": proc.returncode, "output": proc.stdout + proc.stderr, "report": report,
            "out": project / "out" / "android"}


def test_an_encoder_folder_builds_every_format_judged_by_retrieval(encoder_project: dict) -> None:
    report = encoder_project["report"]
    assert encoder_project["code"] == 0, encoder_project["output"]
    source = report["source"]
    assert source["task"] == "feature-extraction" and source["provenance"]["architecture"] == "bert"
    assert [i["name"] for i in source["inputs"]] == ["input_ids", "attention_mask"]
    assert {i["dtype"] for i in source["inputs"]} == {"int64"}
    assert [o["name"] for o in source["outputs"]] == ["embedding"] and source["accuracy"] == 1.0
    labels = {f"{a['format']}:{a['precision']}" for a in report["artifacts"]}
    assert labels == {"pte:fp32", "pte:int8", "tflite:fp32", "tflite:int8", "onnx:fp32", "onnx:int8"}
    for artifact in report["artifacts"]:
        validation = artifact["validation"]
        (embedding,) = validation["outputs"]
        assert artifact["status"] == "ok" and validation["metric"] == "retrieval"
        assert embedding["classification"] is False and embedding.get("agreement") is None   # no argmax
        assert embedding["cosine"] > (0.9999 if artifact["precision"] == "fp32" else 0.9)
        assert artifact["accuracy"] >= 0.9 and validation["eval_samples"] == 64
    tflite = next(a for a in report["artifacts"] if a["format"] == "tflite" and a["precision"] == "int8")
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(encoder_project["out"] / tflite["path"]))
    dtypes = {d["index"]: d["dtype"] for d in interpreter.get_tensor_details()}
    int8_ops = {op["op_name"] for op in interpreter._get_ops_details()      # LiteRT's int8 kernels run the linears
                if any(dtypes.get(i) == np.int8 for i in op["inputs"] if i >= 0)}
    assert "FULLY_CONNECTED" in int8_ops


def test_retrieval_agreement_forgives_near_ties_and_refuses_a_collapsed_encoder() -> None:
    rng = np.random.default_rng(0)
    source = rng.normal(size=(32, 16)).astype(np.float32)
    labels = similarities(source)
    assert retrieval_agreement(source, labels) == 1.0
    noisy = source + rng.normal(scale=0.01, size=source.shape).astype(np.float32)
    assert retrieval_agreement(noisy, labels) == 1.0         # a flip between near-tied neighbours is no change
    shuffled = source[rng.permutation(32)]
    assert retrieval_agreement(shuffled, labels) < 0.3
    collapsed = np.repeat(source.mean(axis=0, keepdims=True), 32, axis=0) + noisy * 1e-3
    verdict = validate(Tensors(("embedding",), (collapsed,)), Tensors(("embedding",), (source,)),
                       Precision.parse("int8").thresholds, labels, ("retrieval", retrieval_agreement),
                       task="feature-extraction")
    assert not verdict.passed and verdict.outputs[0].classification is False
    assert "retrieval drop" in verdict.message or "collapsed" in verdict.message
