"""The `tiny-lm` example: a Llama-architecture decoder and its own BPE tokenizer, trained in seconds on the help
text that ships with Python (targets/llm/tiny_lm.py), cached in the user cache dir. Evaluation windows come from
the held-out tenth of that text; each window's first tokens are also a prompt for greedy generation."""
from __future__ import annotations

import numpy as np

from edge_pipeline.plugins import DataBundle, Model
from edge_pipeline.types import TEXT_GENERATION, JsonObject
from targets.examples.training import cached_weights
from targets.llm import tiny_lm
from targets.llm.source_decoder import DecoderReference, declared_eos_ids

VERSION = 1
WINDOW = 64            # tokens per evaluation window (teacher-forced)
WINDOWS = 8
CALIBRATION_WINDOWS = 4
PROMPT_TOKENS = 16     # each window's first tokens, continued greedily
NEW_TOKENS = 32


def windows(ids: list[int], count: int) -> np.ndarray:
    usable = np.array(ids[:count * WINDOW], dtype=np.int64)
    return usable.reshape(count, WINDOW)


def load() -> tuple[Model, DataBundle]:
    """The `tiny-lm` example (entry point `edgepipe.examples`)."""
    from transformers import LlamaForCausalLM

    splits = tiny_lm.corpus()
    tokenizer = tiny_lm.train_tokenizer(splits.train)
    lm, weights = cached_weights(f"tiny-lm-v{VERSION}", LlamaForCausalLM(tiny_lm.config_for(tokenizer)),
                                 lambda: tiny_lm.train(tokenizer, splits.train))
    evaluation = windows(tokenizer.encode(splits.evaluation).ids, WINDOWS)
    prompts = tuple(tuple(int(t) for t in row[:PROMPT_TOKENS]) for row in evaluation)
    module = DecoderReference(lm, tokenizer.to_str(), declared_eos_ids(lm, tokenizer, tiny_lm.EOS), prompts,
                              NEW_TOKENS)
    calibration = windows(tokenizer.encode(splits.train[-20_000:]).ids, CALIBRATION_WINDOWS)
    data = DataBundle.single("input_ids", evaluation[:1], calibration, evaluation, None)
    provenance: JsonObject = {"kind": "example", "name": "tiny-lm", "weights": str(weights),
                              "architecture": "LlamaForCausalLM (2 layers, width 64, GQA 4/2 heads, context 128)",
                              "data": "pydoc_data.topics (Python's help text), last tenth held out; "
                                      f"{WINDOWS} windows of {WINDOW} tokens, prompts of {PROMPT_TOKENS}"}
    import torch

    return Model("torch", module, (torch.from_numpy(evaluation[:1].copy()),), provenance,
                 input_names=data.example.names, task=TEXT_GENERATION), data
