"""How a decoder artifact is judged against its source, token by token (numpy only).

Float: teacher-forced logits with their SQNR per position (the worst position is what is reported) and greedy
continuations identical to the source's. Quantized: next-token top-1 agreement with the source, mean KL divergence
of the next-token distributions, perplexity on the evaluation text and its increase, and for each prompt the
position where the greedy continuation first differs."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TokenAgreement:
    positions: int
    agreement: float                 # next-token top-1 equal to the source's
    mean_kl: float                   # KL(source || artifact) of the next-token distributions, nats
    perplexity: float                # the artifact's, on the evaluation text
    source_perplexity: float
    worst_sqnr_db: float             # of the logits, over positions
    worst_position: int

    @property
    def perplexity_increase_pct(self) -> float:
        return (self.perplexity / self.source_perplexity - 1.0) * 100.0


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def perplexity(logits: np.ndarray, ids: np.ndarray) -> float:
    """exp of the mean negative log-likelihood of ids[1:] given the logits at positions [:-1]."""
    logp = log_softmax(logits[:-1].astype(np.float64))
    return float(np.exp(-logp[np.arange(len(ids) - 1), ids[1:]].mean()))


def compare_logits(source: np.ndarray, artifact: np.ndarray, ids: np.ndarray) -> TokenAgreement:
    """`source` and `artifact`: teacher-forced logits (positions x vocabulary) over the same `ids`."""
    if source.shape != artifact.shape:
        raise ValueError(f"logits of shape {artifact.shape} for a source of shape {source.shape}")
    src, art = source.astype(np.float64), artifact.astype(np.float64)
    noise = ((src - art) ** 2).sum(axis=-1)
    signal = (src ** 2).sum(axis=-1)
    sqnr = 10 * np.log10(np.maximum(signal, 1e-30) / np.maximum(noise, 1e-30))
    p_src, p_art = log_softmax(src), log_softmax(art)
    kl = (np.exp(p_src) * (p_src - p_art)).sum(axis=-1)
    worst = int(np.argmin(sqnr))
    return TokenAgreement(len(ids), float((src.argmax(-1) == art.argmax(-1)).mean()), float(kl.mean()),
                          perplexity(artifact, ids), perplexity(source, ids), float(sqnr[worst]), worst)


def compare_windows(sources: Sequence[np.ndarray], artifacts: Sequence[np.ndarray],
                    windows: Sequence[np.ndarray]) -> tuple[TokenAgreement, int]:
    """`compare_logits` over several independent windows (no position pairs across a window's end); also the
    window holding the worst position. Non-finite artifact logits raise ValueError naming the window."""
    for index, artifact in enumerate(artifacts):
        if not np.all(np.isfinite(artifact)):
            raise ValueError(f"the artifact's logits contain NaN or infinity (window {index})")
    parts = [compare_logits(s, a, ids) for s, a, ids in zip(sources, artifacts, windows)]
    worst = min(range(len(parts)), key=lambda i: parts[i].worst_sqnr_db)
    weights = np.array([p.positions for p in parts], dtype=np.float64)
    nll = np.array([np.log(p.perplexity) for p in parts]) * (weights - 1)
    source_nll = np.array([np.log(p.source_perplexity) for p in parts]) * (weights - 1)
    pairs = float((weights - 1).sum())
    merged = TokenAgreement(int(weights.sum()), float(np.average([p.agreement for p in parts], weights=weights)),
                            float(np.average([p.mean_kl for p in parts], weights=weights)),
                            float(np.exp(nll.sum() / pairs)), float(np.exp(source_nll.sum() / pairs)),
                            parts[worst].worst_sqnr_db, parts[worst].worst_position)
    return merged, worst


def first_divergence(source: Sequence[int], artifact: Sequence[int]) -> int | None:
    """The first position where two greedy continuations differ (a shorter one differs where it ends), or None."""
    for position, (a, b) in enumerate(zip(source, artifact)):
        if a != b:
            return position
    return None if len(source) == len(artifact) else min(len(source), len(artifact))


PAD = -1   # pads the prompts and greedy continuations of a language model's reference to one width


def unpadded(rows: np.ndarray) -> list[tuple[int, ...]]:
    """Each row of a PAD-padded id array, without its padding."""
    return [tuple(int(t) for t in row if t != PAD) for row in rows]


# The conversation every chat template is rendered with, by the source and by each runtime that renders templates
CHAT_CONVERSATION = ({"role": "user", "content": "What does the class statement do?"},)


def text_of_codes(codes: np.ndarray) -> str:
    """A reference output holding text as UTF-8 byte codes (its first row) read back."""
    return bytes(np.asarray(codes[0], dtype=np.uint8)).decode("utf-8")
