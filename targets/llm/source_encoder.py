"""A text encoder as edgepipe's source stage sees it: `input_ids` and `attention_mask` in (int64, a fixed
length), the mean of the last hidden states over the real tokens out as one named output, `embedding` (what an
on-device search indexes). Artifacts are exported like any two-input model; they are judged per output (SQNR,
cosine) and by retrieval: each evaluation sentence's nearest neighbour must stay the source's."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from edge_pipeline.errors import InputError
from edge_pipeline.measure.validate import similarities
from edge_pipeline.plugins import DataBundle, Model, OwnData
from edge_pipeline.tensors import Tensors
from edge_pipeline.types import FEATURE_EXTRACTION, JsonObject

LENGTH, EVALUATION, CALIBRATION, MIN_SENTENCES = 32, 64, 32, 8
PAD_TOKENS = ("[PAD]", "<pad>", "<|endoftext|>")


class EncoderReference(torch.nn.Module):
    def __init__(self, encoder: Any) -> None:
        super().__init__()
        self.encoder = encoder.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return {"embedding": (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)}


def sentences(text: str) -> list[str]:
    """Lines of at least three words: the evaluation sentences, then the calibration ones."""
    return [line.strip() for line in text.splitlines() if len(line.split()) >= 3]


def encode(tokenizer: Any, lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids padded (or cut) to LENGTH, and the mask of real tokens."""
    pad = next((i for t in PAD_TOKENS if (i := tokenizer.token_to_id(t)) is not None), 0)
    ids = np.full((len(lines), LENGTH), pad, dtype=np.int64)
    mask = np.zeros((len(lines), LENGTH), dtype=np.int64)
    for row, line in enumerate(lines):
        tokens = tokenizer.encode(line).ids[:LENGTH]
        ids[row, :len(tokens)], mask[row, :len(tokens)] = tokens, 1
    return ids, mask


def encoder_model(encoder: Any, tokenizer: Any, text: str, provenance: JsonObject) -> tuple[Model, Tensors]:
    """The source Model (task feature-extraction) with its sentences, labelled by the source's own similarities
    (what retrieval agreement compares an artifact's nearest neighbours with)."""
    found = sentences(text)
    if len(found) < MIN_SENTENCES + 1:
        raise InputError(f"the evaluation text has {len(found)} sentences (lines of 3 words or more); an encoder's "
                         f"retrieval check needs at least {MIN_SENTENCES + 1}")
    evaluation = found[:EVALUATION]
    calibration = found[EVALUATION:EVALUATION + CALIBRATION] or evaluation[:CALIBRATION]
    module = EncoderReference(encoder.float())
    names = ("input_ids", "attention_mask")
    eval_x, calib_x = Tensors(names, encode(tokenizer, evaluation)), Tensors(names, encode(tokenizer, calibration))
    with torch.no_grad():
        embeddings = module(*(torch.from_numpy(a) for a in eval_x.arrays))["embedding"].numpy()
    labels = similarities(embeddings)     # retrieval reads the source's neighbours (and its near-ties) from them
    example = eval_x[:1]
    data = DataBundle(example=example, calibration=calib_x, eval_inputs=eval_x, eval_labels=labels)
    model = Model("torch", module, tuple(torch.from_numpy(a.copy()) for a in example.arrays), provenance,
                  input_names=names, task=FEATURE_EXTRACTION, configs=(OwnData(data),))
    return model, example
