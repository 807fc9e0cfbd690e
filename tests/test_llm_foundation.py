"""Language models, first layer (issue 21): the tiny example trains offline, exports to `.pte` with a static KV
cache through transformers' and ExecuTorch's own LLM path, and the exported program is judged token by token
against the source, in ExecuTorch's runtime and through ExecuTorch's own LLM runner. Not yet wired into
`edgepipe build` (that is the issue's next part); these are the parts that build will call."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from edge_pipeline.measure.generation import compare_logits, first_divergence
from targets.llm import pte_export, runner_loop, stepping, tiny_lm

NEW_TOKENS = 32


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    model, tokenizer = tiny_lm.make(steps=150)
    folder = tmp_path_factory.mktemp("tiny-lm")
    tokenizer.save(str(folder / "tokenizer.json"))
    eos = tokenizer.token_to_id(tiny_lm.EOS)
    metadata = pte_export.DecoderMetadata(tiny_lm.CONTEXT, tokenizer.get_vocab_size(),
                                          tokenizer.token_to_id(tiny_lm.BOS), (eos,))
    pte_export.export_decoder(copy.deepcopy(model), folder / "fp32.pte", metadata)
    ids = np.array(tokenizer.encode(tiny_lm.corpus().evaluation).ids[:96])
    return {"model": model, "tokenizer": tokenizer, "folder": folder, "metadata": metadata, "ids": ids,
            "source": stepping.source_logits(model, ids)}


def test_tokenizer_and_text_come_from_the_installed_python() -> None:
    splits = tiny_lm.corpus()
    assert len(splits.train) > 300_000 and splits.evaluation not in splits.train
    tokenizer = tiny_lm.train_tokenizer(splits.train[:200_000])
    assert tokenizer.get_vocab_size() == tiny_lm.VOCAB
    assert tokenizer.decode(tokenizer.encode("The class statement").ids) == "The class statement"


def test_fp32_pte_is_the_source_token_by_token(tiny: dict) -> None:
    decoder = stepping.PteDecoder(tiny["folder"] / "fp32.pte")
    assert decoder.max_context == tiny_lm.CONTEXT and decoder.eos_ids == tiny["metadata"].eos_ids
    figures = compare_logits(tiny["source"], decoder.logits(tiny["ids"]), tiny["ids"])
    assert figures.agreement == 1.0 and figures.worst_sqnr_db > 60, figures
    assert abs(figures.perplexity_increase_pct) < 0.01
    assert figures.source_perplexity < tiny_lm.VOCAB / 2        # trained: far better than guessing
    for prompt in tiny_lm.PROMPTS:
        ids = np.array(tiny["tokenizer"].encode(prompt).ids)
        reference = stepping.source_greedy(tiny["model"], ids, NEW_TOKENS, decoder.eos_ids)
        assert first_divergence(reference, decoder.greedy(ids, NEW_TOKENS).tokens) is None, prompt


def test_executorch_llm_runner_says_what_stepping_says(tiny: dict) -> None:
    decoder = stepping.PteDecoder(tiny["folder"] / "fp32.pte")
    for prompt in tiny_lm.PROMPTS[:2]:
        stepped = decoder.greedy(np.array(tiny["tokenizer"].encode(prompt).ids), NEW_TOKENS)
        result = runner_loop.generate(tiny["folder"] / "fp32.pte", tiny["folder"] / "tokenizer.json", prompt,
                                      NEW_TOKENS)
        assert result.text == tiny["tokenizer"].decode(list(stepped.tokens)), prompt
        assert result.prompt_tokens == len(tiny["tokenizer"].encode(prompt).ids)
        assert result.generated_tokens >= 1


def test_8da4w_keeps_the_meaning_and_a_corrupted_scale_does_not(tiny: dict) -> None:
    model = copy.deepcopy(tiny["model"])
    assert pte_export.quantize_8da4w(model) == []             # every linear layer: widths are multiples of 32
    pte_export.export_decoder(model, tiny["folder"] / "8da4w.pte", tiny["metadata"])
    int4 = compare_logits(tiny["source"], stepping.PteDecoder(tiny["folder"] / "8da4w.pte").logits(tiny["ids"]),
                          tiny["ids"])
    assert int4.agreement >= 0.8 and int4.perplexity_increase_pct < 15, int4
    assert (tiny["folder"] / "8da4w.pte").stat().st_size < 0.5 * (tiny["folder"] / "fp32.pte").stat().st_size

    broken = copy.deepcopy(tiny["model"])
    projection = broken.model.layers[0].mlp.down_proj.weight
    projection.data[:8] *= 40.0                                 # eight output rows on a wrong scale
    pte_export.export_decoder(broken, tiny["folder"] / "broken.pte", tiny["metadata"])
    bad = compare_logits(tiny["source"], stepping.PteDecoder(tiny["folder"] / "broken.pte").logits(tiny["ids"]),
                         tiny["ids"])
    assert bad.worst_sqnr_db < int4.worst_sqnr_db - 10 and bad.perplexity_increase_pct > int4.perplexity_increase_pct


def test_a_wrong_eos_id_in_the_metadata_is_caught_at_its_position(tiny: dict) -> None:
    prompt = np.array(tiny["tokenizer"].encode(tiny_lm.PROMPTS[0]).ids)
    reference = stepping.source_greedy(tiny["model"], prompt, NEW_TOKENS, tiny["metadata"].eos_ids)
    wrong = pte_export.DecoderMetadata(tiny_lm.CONTEXT, tiny["metadata"].vocab_size, tiny["metadata"].bos_id,
                                       (reference[3],))          # a token the model says early, declared as EOS
    pte_export.export_decoder(copy.deepcopy(tiny["model"]), tiny["folder"] / "wrong-eos.pte", wrong)
    stepped = stepping.PteDecoder(tiny["folder"] / "wrong-eos.pte").greedy(prompt, NEW_TOKENS)
    position = first_divergence(reference, stepped.tokens)
    assert position is not None and position <= 4


def test_a_prompt_longer_than_the_context_is_refused(tiny: dict) -> None:
    decoder = stepping.PteDecoder(tiny["folder"] / "fp32.pte")
    with pytest.raises(ValueError, match="exceed the program's context of 128"):
        decoder.logits(np.zeros(tiny_lm.CONTEXT, dtype=np.int64))
