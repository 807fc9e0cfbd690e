"""Models with several named inputs and outputs of several dtypes, and their data: the shapes users bring
(a text encoder with token ids and a mask, a detector-style two-head CNN, a recurrent step). The tests copy
this file into a throwaway project as `multi_io.py` and point edgepipe.toml at its factories."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

VOCAB, SEQ, WIDTH, CLASSES = 40, 12, 32, 4


class TinyEncoder(nn.Module):
    """Token ids + attention mask (int64) -> {"pooled": class logits [N, 4], "token_logits": [N, SEQ, VOCAB]}."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, WIDTH)
        self.position = nn.Parameter(torch.randn(1, SEQ, WIDTH) * 0.1)
        self.qkv = nn.Linear(WIDTH, 3 * WIDTH)
        self.mix = nn.Linear(WIDTH, WIDTH)
        self.ffn = nn.Sequential(nn.Linear(WIDTH, 64), nn.ReLU(), nn.Linear(64, WIDTH))
        self.norm1, self.norm2 = nn.LayerNorm(WIDTH), nn.LayerNorm(WIDTH)
        self.head = nn.Linear(WIDTH, CLASSES)
        self.lm = nn.Linear(WIDTH, VOCAB)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        mask = attention_mask.to(torch.float32)
        x = self.embed(input_ids) + self.position
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        scores = q @ k.transpose(1, 2) / WIDTH ** 0.5 + (mask[:, None, :] - 1.0) * 1e4
        x = self.norm1(x + self.mix(torch.softmax(scores, dim=-1) @ v))
        x = self.norm2(x + self.ffn(x))
        pooled = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
        return {"pooled": self.head(pooled), "token_logits": self.lm(x)}


def make_encoder() -> nn.Module:
    torch.manual_seed(0)
    return TinyEncoder()


def _text(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class = which quarter of the vocabulary most unmasked tokens come from."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    ids = np.where(rng.random((n, SEQ)) < 0.7, labels[:, None] * (VOCAB // CLASSES)
                   + rng.integers(0, VOCAB // CLASSES, (n, SEQ)), rng.integers(0, VOCAB, (n, SEQ)))
    lengths = rng.integers(SEQ // 2, SEQ + 1, n)
    mask = (np.arange(SEQ)[None, :] < lengths[:, None]).astype(np.int64)
    return ids.astype(np.int64), mask, labels.astype(np.int64)


def train_encoder(steps: int = 150) -> nn.Module:
    model = make_encoder()
    ids, mask, labels = _text(512, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(steps):
        rows = slice((step * 32) % 512, (step * 32) % 512 + 32)
        out = model(torch.from_numpy(ids[rows]), torch.from_numpy(mask[rows]))
        loss = nn.functional.cross_entropy(out["pooled"], torch.from_numpy(labels[rows]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def text_example():
    ids, mask, _ = _text(1, 2)
    return {"input_ids": ids, "attention_mask": mask}


def text_calibration():
    ids, mask, _ = _text(64, 3)
    return [{"input_ids": ids[i:i + 1], "attention_mask": mask[i:i + 1]} for i in range(64)]


def text_evaluate():
    ids, mask, labels = _text(240, 4)
    return [({"input_ids": ids[i:i + 60], "attention_mask": mask[i:i + 60]}, labels[i:i + 60])
            for i in range(0, 240, 60)]


class TwoHeadNet(nn.Module):
    """A detector-style CNN on 8x8 digits: class logits and a box through a sigmoid."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                                      nn.ReLU(), nn.Flatten())
        self.classes = nn.Linear(16 * 64, 10)
        self.box = nn.Linear(16 * 64, 4)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(image)
        return self.classes(features), torch.sigmoid(self.box(features))


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8), digits.target.astype(np.int64)


def train_two_head(epochs: int = 3) -> nn.Module:
    torch.manual_seed(0)
    model = TwoHeadNet()
    images, labels = _digits()
    x, y = torch.from_numpy(images[600:]), torch.from_numpy(labels[600:])
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(epochs):
        for i in range(0, len(x), 64):
            loss = nn.functional.cross_entropy(model(x[i:i + 64])[0], y[i:i + 64])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def make_two_head() -> nn.Module:
    torch.manual_seed(0)
    return TwoHeadNet()


def digits_calibration():
    images, _ = _digits()
    return [images[400:600]]


def digits_evaluate():
    images, labels = _digits()
    return [(images[:400], labels[:400])]


class RecurrentStep(nn.Module):
    """One GRU-style step: (x, h) -> (y, h_next)."""

    def __init__(self) -> None:
        super().__init__()
        self.gates = nn.Linear(16 + 24, 2 * 24)
        self.candidate = nn.Linear(16 + 24, 24)
        self.out = nn.Linear(24, 6)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z, r = torch.sigmoid(self.gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)
        candidate = torch.tanh(self.candidate(torch.cat([x, r * h], dim=1)))
        h_next = (1 - z) * h + z * candidate
        return self.out(h_next), h_next


def make_recurrent() -> nn.Module:
    torch.manual_seed(0)
    return RecurrentStep().eval()


def recurrent_evaluate():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((256, 16)).astype(np.float32)
    h = np.tanh(rng.standard_normal((256, 24))).astype(np.float32)
    return [((x, h), np.zeros(256, dtype=np.int64))]


class WideLogits(nn.Module):
    """A trained classifier whose logits span several hundred (its last layer scaled)."""

    def __init__(self, trained: nn.Module, scale: float) -> None:
        super().__init__()
        self.inner = trained
        with torch.no_grad():
            last = [m for m in trained.modules() if isinstance(m, nn.Linear)][-1]
            last.weight.mul_(scale)
            last.bias.mul_(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def make_wide_logits() -> nn.Module:
    from targets.examples.torch_digits import load

    model, _ = load()
    return WideLogits(model.module, 40.0).eval()


def digits_example_calibration():
    from targets.examples.digits_data import load_digits_split

    return [load_digits_split().calib_x]


def digits_example_evaluate():
    from targets.examples.digits_data import load_digits_split

    split = load_digits_split()
    return [(split.eval_x, split.eval_y)]


def _keras_two_input_trunk():
    """Two named Keras inputs (an image and side features) joined into one feature vector."""
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 1), name="image")
    side = keras.Input((3,), name="side")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(image)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Concatenate()([x, keras.layers.Dense(8, activation="relu")(side)])
    return {"image": image, "side": side}, x


def keras_two_inputs():
    """A Keras functional model with two named inputs (an image and side features) and one class output."""
    import keras

    inputs, x = _keras_two_input_trunk()
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x))


def keras_two_heads():
    """keras_two_inputs with a second head: class logits and a 4-wide embedding, each named."""
    import keras

    inputs, x = _keras_two_input_trunk()
    return keras.Model(inputs, [keras.layers.Dense(10, name="logits")(x), keras.layers.Dense(4, name="embedding")(x)])


def keras_example():
    rng = np.random.default_rng(6)
    return {"image": rng.random((1, 8, 8, 1)).astype(np.float32), "side": rng.random((1, 3)).astype(np.float32)}


def keras_calibration():
    rng = np.random.default_rng(7)
    return [{"image": rng.random((32, 8, 8, 1)).astype(np.float32), "side": rng.random((32, 3)).astype(np.float32)}]
