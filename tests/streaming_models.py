"""Streaming models with state carried from call to call, and their data: a GRU keyword spotter with a scalar
sample-rate input and an `[layers, N, H]` state, and a convolutional model with a context buffer. The tests copy
this file into a throwaway project as `streaming.py`; the spotter is trained there on generated features.

Streams are consecutive chunks: evaluation stream k is samples k*STEPS .. (k+1)*STEPS - 1, and a keyword shown
in one chunk is the label of every later chunk of its stream until the next one: only a model that carries its
state can score above chance.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

FRAMES, FEATURES, HIDDEN, KEYWORDS, STEPS = 8, 16, 32, 4, 50
RATE = 16000


class GruCell(nn.Module):
    """A GRU cell written out (every runtime has these ops; not all have a fused GRU)."""

    def __init__(self, inputs: int, hidden: int) -> None:
        super().__init__()
        self.x = nn.Linear(inputs, 3 * hidden)
        self.h = nn.Linear(hidden, 3 * hidden)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        xr, xz, xn = self.x(x).chunk(3, dim=-1)
        hr, hz, hn = self.h(h).chunk(3, dim=-1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1 - z) * n + z * h


class KeywordSpotter(nn.Module):
    """features [N, FRAMES, FEATURES], state [1, N, HIDDEN] (batch on axis 1, like torch's GRU), sr: a scalar
    int64 sample rate -> {"logits": [N, KEYWORDS], "stateN": [1, N, HIDDEN]}."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = GruCell(FEATURES, HIDDEN)
        self.head = nn.Linear(HIDDEN, KEYWORDS)

    def forward(self, features: torch.Tensor, state: torch.Tensor, sr: torch.Tensor) -> dict[str, torch.Tensor]:
        features = features * (sr.to(torch.float32) / RATE)
        h = state[0]
        for t in range(FRAMES):
            h = self.cell(features[:, t], h)
        return {"logits": self.head(h), "stateN": h.unsqueeze(0)}


def _streams(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` streams of STEPS chunks: features [count, STEPS, FRAMES, FEATURES], labels [count, STEPS]."""
    rng = np.random.default_rng(seed)
    features = rng.normal(0.0, 0.3, (count, STEPS, FRAMES, FEATURES)).astype(np.float32)
    labels = np.zeros((count, STEPS), dtype=np.int64)
    for stream in range(count):
        current = int(rng.integers(0, KEYWORDS))
        for step in range(STEPS):
            if step == 0 or rng.random() < 0.15:
                current = int(rng.integers(0, KEYWORDS))
                band = slice(current * 4, current * 4 + 4)
                features[stream, step, 2:6, band] += 2.0
            labels[stream, step] = current
    return features, labels


def train_spotter(iterations: int = 250) -> nn.Module:
    torch.manual_seed(0)
    model = KeywordSpotter()
    features, labels = _streams(64, 1)
    x, y = torch.from_numpy(features), torch.from_numpy(labels)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    sr = torch.tensor(RATE)
    for step in range(iterations):
        rows = torch.arange(16) + (step * 16) % 64
        state = torch.zeros(1, 16, HIDDEN)
        loss = torch.zeros(())
        for t in range(0, 20):
            out = model(x[rows, t], state, sr)
            loss = loss + nn.functional.cross_entropy(out["logits"], y[rows, t])
            state = out["stateN"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def make_spotter() -> nn.Module:
    torch.manual_seed(0)
    return KeywordSpotter()


def spotter_example():
    features, _ = _streams(1, 2)
    return {"features": features[0, :1], "state": np.zeros((1, 1, HIDDEN), np.float32), "sr": np.array(RATE)}


def spotter_calibration():
    features, _ = _streams(2, 3)
    return [{"features": features[s, t:t + 1], "state": np.zeros((1, 1, HIDDEN), np.float32), "sr": np.array(RATE)}
            for s in range(2) for t in range(STEPS)]


def spotter_evaluate():
    """Four streams, one chunk per batch, in order."""
    features, labels = _streams(4, 4)
    for stream in range(4):
        for step in range(STEPS):
            yield ({"features": features[stream, step:step + 1], "state": np.zeros((1, 1, HIDDEN), np.float32),
                    "sr": np.array(RATE)}, labels[stream, step:step + 1])


CHUNK, CONTEXT, CHANNELS, EVENTS = 32, 6, 8, 3


class ConvStream(nn.Module):
    """chunk [N, 1, CHUNK] and buffer [N, 1, CONTEXT] (the last samples of the stream so far) ->
    {"events": [N, EVENTS], "buffer_out": [N, 1, CONTEXT]}: a causal convolution over the chunk with its context."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, CHANNELS, 4)
        self.conv2 = nn.Conv1d(CHANNELS, CHANNELS, 4)
        self.head = nn.Linear(CHANNELS, EVENTS)

    def forward(self, chunk: torch.Tensor, buffer: torch.Tensor) -> dict[str, torch.Tensor]:
        x = torch.cat([buffer, chunk], dim=2)
        y = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return {"events": self.head(y.mean(dim=2)), "buffer_out": x[:, :, -CONTEXT:]}


def make_conv_stream() -> nn.Module:
    torch.manual_seed(0)
    return ConvStream()


def _signal(chunks: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(chunks * CHUNK, dtype=np.float32)
    wave = np.sin(t * 0.3) + 0.5 * np.sin(t * 0.05) + rng.normal(0.0, 0.2, t.shape)
    return wave.astype(np.float32).reshape(chunks, 1, 1, CHUNK)


def conv_calibration():
    return [{"chunk": c, "buffer": np.zeros((1, 1, CONTEXT), np.float32)} for c in _signal(64, 5)]


def conv_evaluate():
    chunks = _signal(2 * STEPS, 6)
    for chunk in chunks:
        yield {"chunk": chunk, "buffer": np.zeros((1, 1, CONTEXT), np.float32)}, None   # no labels: SQNR judges



TIME, SENSORS, LSTM_HIDDEN, LAYERS, ACTIVITIES, STREAMS = 5, 6, 16, 2, 3, 2


class SensorLstm(nn.Module):
    """torch's own LSTM, sequence-first: x [TIME, N, SENSORS] and (h0, c0) [LAYERS, N, HIDDEN], batch on axis 1
    of all three -> {"activity": [N, ACTIVITIES], "hn", "cn"}. Two streams run side by side (N = 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(SENSORS, LSTM_HIDDEN, num_layers=LAYERS)
        self.head = nn.Linear(LSTM_HIDDEN, ACTIVITIES)

    def forward(self, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor) -> dict[str, torch.Tensor]:
        out, (hn, cn) = self.lstm(x, (h0, c0))
        return {"activity": self.head(out[-1]), "hn": hn, "cn": cn}


def make_sensor_lstm() -> nn.Module:
    torch.manual_seed(0)
    return SensorLstm()


def _sensor_chunks(chunks: int, seed: int) -> np.ndarray:
    """`chunks` calls of two streams: [chunks, TIME, STREAMS, SENSORS], a slow drift plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(chunks * TIME, dtype=np.float32)[:, None, None]
    phase = rng.uniform(0, 6.28, (1, STREAMS, SENSORS)).astype(np.float32)
    signal = np.sin(0.07 * t + phase) + rng.normal(0.0, 0.1, (chunks * TIME, STREAMS, SENSORS))
    return signal.astype(np.float32).reshape(chunks, TIME, STREAMS, SENSORS)


def _zeros_state() -> np.ndarray:
    return np.zeros((LAYERS, STREAMS, LSTM_HIDDEN), np.float32)


def lstm_example():
    return {"x": _sensor_chunks(1, 7)[0], "h0": _zeros_state(), "c0": _zeros_state()}


def lstm_calibration():
    return [{"x": chunk, "h0": _zeros_state(), "c0": _zeros_state()} for chunk in _sensor_chunks(STEPS, 8)]


def lstm_evaluate():
    for chunk in _sensor_chunks(2 * STEPS, 9):
        yield {"x": chunk, "h0": _zeros_state(), "c0": _zeros_state()}, None


class TupleStateLstm(SensorLstm):
    """The same LSTM with its state as one argument, the `(h, c)` tuple nn.LSTM itself takes and returns:
    forward(x, state) -> {"activity", "next_state": (h, c)}, flattened to inputs state_0 / state_1 and outputs
    next_state_0 / next_state_1."""

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> dict[str, object]:
        out, next_state = self.lstm(x, state)
        return {"activity": self.head(out[-1]), "next_state": next_state}


def make_tuple_lstm() -> nn.Module:
    torch.manual_seed(0)
    return TupleStateLstm()


def tuple_lstm_example():
    return {"x": _sensor_chunks(1, 7)[0], "state": (_zeros_state(), _zeros_state())}


def tuple_lstm_calibration():
    return [(chunk, (_zeros_state(), _zeros_state())) for chunk in _sensor_chunks(STEPS, 8)]


def tuple_lstm_evaluate():
    for chunk in _sensor_chunks(2 * STEPS, 9):
        yield {"x": chunk, "state": (_zeros_state(), _zeros_state())}, None


def make_keras_spotter(unroll: bool = True):
    """The keyword spotter in Keras with its state explicit: a GRU layer given `initial_state` and returning its
    last state (`return_state=True`), as a stateful Keras layer is exported: {"features", "state" [N, HIDDEN]}
    -> {"logits", "next_state"}. Random weights: the sequences judge fidelity to the source, not skill.
    Unrolled over its 8 frames, as int8 LiteRT needs (full-integer conversion has no While loop)."""
    import keras

    keras.utils.set_random_seed(0)
    features = keras.Input((FRAMES, FEATURES), name="features")
    state = keras.Input((HIDDEN,), name="state")
    gru = keras.layers.GRU(HIDDEN, return_state=True, unroll=unroll, name="gru")
    sequence, next_state = gru(features, initial_state=state)
    logits = keras.layers.Dense(KEYWORDS, name="head")(sequence)
    return keras.Model({"features": features, "state": state}, {"logits": logits, "next_state": next_state})


def make_keras_spotter_loop():
    """The same GRU as a While loop: LiteRT's converter needs its batch dimension static."""
    return make_keras_spotter(unroll=False)


def _keras_batch(features: np.ndarray) -> dict[str, np.ndarray]:
    return {"features": features, "state": np.zeros((len(features), HIDDEN), np.float32)}


def keras_example():
    return _keras_batch(_streams(1, 2)[0][0, :1])


def keras_calibration():
    features, _ = _streams(2, 3)
    return [_keras_batch(features[s, t:t + 1]) for s in range(2) for t in range(STEPS)]


def keras_evaluate():
    features, labels = _streams(2, 4)
    for stream in range(2):
        for step in range(STEPS):
            yield _keras_batch(features[stream, step:step + 1]), labels[stream, step:step + 1]
