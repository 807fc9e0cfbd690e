"""The Keras twin of the default example: same digits data and split, NHWC, cached as a .keras file."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edge_pipeline.building.cache import cache_root
from edge_pipeline.fsutil import atomic_path
from edge_pipeline.plugins import DataBundle, Model
from edge_pipeline.types import JsonObject
from targets.examples.digits_data import load_digits_split

if TYPE_CHECKING:
    import keras

VERSION = 1
EPOCHS = 15
SEED = 0


def build_model() -> keras.Model:
    import keras

    return keras.Sequential([
        keras.Input((8, 8, 1), batch_size=None, name="image"),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ], name="digits_cnn")


def train(train_x: np.ndarray, train_y: np.ndarray, epochs: int = EPOCHS) -> keras.Model:
    _seed()   # before building: the initial weights come from the seeded generator
    return _fit(build_model(), train_x, train_y, epochs)


def fine_tune(model: keras.Model, epochs: int = 8) -> keras.Model:
    """The example's fine-tune callback after pruning: a few epochs on the same training split, seeded."""
    _seed()
    split = load_digits_split()
    return _fit(model, _nhwc(split.train_x), split.train_y, epochs)


def _nhwc(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1))


def _seed() -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()


def _fit(model: keras.Model, train_x: np.ndarray, train_y: np.ndarray, epochs: int) -> keras.Model:
    import keras

    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(train_x, train_y, batch_size=64, epochs=epochs, shuffle=True, verbose=0)
    return model


def load() -> tuple[Model, DataBundle]:
    """The `keras-digits` example: trained once, cached as a .keras file, loaded back in safe mode as a user's
    file would be."""
    from targets.sources.keras_source import keras_input_names, load_keras_file

    split = load_digits_split()
    train_x, calib_x, eval_x = _nhwc(split.train_x), _nhwc(split.calib_x), _nhwc(split.eval_x)
    path = cache_root() / "examples" / f"keras-digits-v{VERSION}.keras"
    if not path.is_file():
        model = train(train_x, split.train_y)
        with atomic_path(path) as tmp:
            keras_tmp = tmp.with_name(tmp.name + ".keras")
            model.save(keras_tmp)
            keras_tmp.replace(tmp)
    model = load_keras_file(path, safe_mode=True)
    data = DataBundle.single(keras_input_names(model)[0], eval_x[:1], calib_x, eval_x, split.eval_y)
    provenance: JsonObject = {"kind": "example", "name": "keras-digits", "weights": str(path),
                  "data": "sklearn.datasets.load_digits (1,797 images), seeded split 1257/180/360, NHWC"}
    return Model("tensorflow", model, data.example.arrays, provenance, input_names=data.example.names), data
