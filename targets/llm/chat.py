"""The chat template as the source renders it: one fixed user turn and the assistant's generation prompt,
through transformers' own `apply_chat_template` over the source's tokenizer. A runtime that renders templates
(LiteRT-LM's conversations, GenAI's tokenizer) must render the template the artifact ships to the same text, or
an app's chat would feed the model a prompt it was never trained on."""
from __future__ import annotations

import numpy as np

from edge_pipeline.measure.generation import CHAT_CONVERSATION


def source_rendering(tokenizer_json: str, template: str) -> str:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(tokenizer_json))
    return str(tokenizer.apply_chat_template(list(CHAT_CONVERSATION), chat_template=template, tokenize=False,
                                             add_generation_prompt=True))


def as_codes(text: str) -> np.ndarray:
    """`text` as UTF-8 byte codes in one row (how a reference output stores it)."""
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)[None]
