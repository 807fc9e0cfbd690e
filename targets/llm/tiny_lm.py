"""`tiny-lm`: a small Llama-architecture decoder and its own BPE tokenizer, trained in seconds on English text
that ships with Python itself (the `pydoc_data` help topics), so that its perplexity and token agreement figures
mean something offline. Deterministic: same seed, same weights."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenizers import Tokenizer

VOCAB = 512
CONTEXT = 128
BOS, EOS, UNK = "<s>", "</s>", "<unk>"
PROMPTS = ("The class statement", "A function definition", "The import statement", "If the value of")


@dataclass(frozen=True)
class TextSplits:
    train: str
    evaluation: str


def corpus() -> TextSplits:
    """The help topics, ASCII only (every token the tokenizer learns is then valid UTF-8 on its own), the
    last tenth held out for evaluation."""
    from pydoc_data.topics import topics

    text = "\n".join(topics[key] for key in sorted(topics))
    text = text.encode("ascii", "ignore").decode("ascii")
    cut = len(text) * 9 // 10
    return TextSplits(text[:cut], text[cut:])


def train_tokenizer(text: str) -> Tokenizer:
    """Byte-level BPE over the characters the text holds (no unused byte tokens), with BOS/EOS/UNK."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=[UNK, BOS, EOS], show_progress=False)
    tokenizer.train_from_iterator([text], trainer)
    return tokenizer


def config_for(tokenizer: Tokenizer) -> Any:
    """Llama architecture, 2 layers of width 64, grouped-query attention (4 heads, 2 KV heads)."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=64, intermediate_size=192,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=CONTEXT, bos_token_id=tokenizer.token_to_id(BOS),
                       eos_token_id=tokenizer.token_to_id(EOS), use_cache=True, tie_word_embeddings=False)


def train(tokenizer: Tokenizer, text: str, steps: int = 200, seed: int = 0) -> Any:
    """A freshly initialised model trained on `text` (seeded), in eval mode."""
    import numpy as np
    import torch
    from transformers import LlamaForCausalLM

    ids = np.array(tokenizer.encode(text).ids, dtype=np.int64)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config_for(tokenizer))
    optimizer = torch.optim.AdamW(model.parameters(), lr=4e-3)
    rng = np.random.default_rng(seed)
    window, batch = 64, 8
    model.train()
    for _ in range(steps):
        starts = rng.integers(0, len(ids) - window - 1, batch)
        chunk = torch.from_numpy(np.stack([ids[s:s + window] for s in starts]))
        loss = model(input_ids=chunk, labels=chunk).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def make(steps: int = 200, seed: int = 0) -> tuple[Any, Tokenizer]:
    """The trained model (eval mode) and its tokenizer."""
    splits = corpus()
    tokenizer = train_tokenizer(splits.train)
    return train(tokenizer, splits.train, steps, seed), tokenizer
