"""Keras structured pruning rebuilds the model with fewer filters and copies the kept weights along every layer
that reads them. Checked exactly: filters that are already all-zero (with zero bias and a BatchNorm that maps
zero to zero) contribute nothing, so removing them must leave the model's outputs unchanged. Channels that meet
in an Add are coupled and stay whole."""
from __future__ import annotations

import numpy as np
import pytest

from edge_pipeline.errors import InputError
from quantization import keras_pruning


def _model():
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dw")(x)
    a = keras.layers.Conv2D(6, 1, name="branch_a")(x)
    b = keras.layers.Conv2D(6, 3, padding="same", name="branch_b")(a)
    x = keras.layers.Add(name="merge")([a, b])
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="head_conv")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(10, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    return keras.Model(inputs, outputs)


def _zero_half(layer, extra=()):
    weights = layer.get_weights()
    count = weights[0].shape[-1]
    dead = np.arange(count // 2, count)
    weights[0][..., dead] = 0
    weights[1][dead] = 0
    layer.set_weights(weights)
    for follower in extra:   # BatchNorm: gamma, beta, mean, var -> maps 0 to 0 on the dead channels
        bn = follower.get_weights()
        bn[1][dead], bn[2][dead] = 0, 0
        follower.set_weights(bn)
    return dead


def test_removing_dead_filters_keeps_outputs_and_coupled_channels_whole() -> None:
    import keras

    keras.utils.set_random_seed(0)
    model = _model()
    layers = {layer.name: layer for layer in model.layers}
    bn = layers["stem_bn"].get_weights()
    layers["stem_bn"].set_weights([bn[0], bn[1], np.random.rand(8).astype("float32"),
                                   1 + np.random.rand(8).astype("float32")])
    _zero_half(layers["stem"], [layers["stem_bn"]])
    dw = layers["dw"].get_weights()
    dw[1][4:] = 0
    layers["dw"].set_weights(dw)
    _zero_half(layers["head_conv"])
    _zero_half(layers["hidden"])
    sample = np.random.rand(4, 8, 8, 3).astype("float32")

    smaller, coupled = keras_pruning.structured(model, 0.5)

    assert coupled == ["branch_a", "branch_b", "logits"]
    pruned = {layer.name: layer for layer in smaller.layers}
    assert pruned["stem"].filters == 4 and pruned["head_conv"].filters == 2 and pruned["hidden"].units == 5
    assert pruned["branch_a"].filters == 6 and pruned["logits"].units == 3
    assert pruned["hidden"].get_weights()[0].shape == (8 * 8 * 2, 5)   # Flatten rows follow the kept channels
    np.testing.assert_allclose(np.asarray(smaller(sample)), np.asarray(model(sample)), rtol=1e-5, atol=1e-5)
    assert keras_pruning.measure(smaller)["params"] < 0.6 * keras_pruning.measure(model)["params"]


def test_unstructured_masks_zero_the_smallest_share_globally() -> None:
    import keras

    keras.utils.set_random_seed(1)
    model = _model()
    masks = keras_pruning.unstructured_masks(model, 0.5)
    keras_pruning.apply_masks(masks)
    assert 0.49 <= keras_pruning.measure(model)["sparsity"] <= 0.51
    with pytest.raises(InputError, match="no Conv2D, DepthwiseConv2D or Dense kernels"):
        keras_pruning.unstructured_masks(keras.Sequential([keras.Input((3,)), keras.layers.ReLU()]), 0.5)


def test_per_layer_scope_prunes_the_same_share_in_every_layer() -> None:
    import keras

    keras.utils.set_random_seed(2)
    model = _model()
    masks = keras_pruning.unstructured_masks(model, 0.5, per_layer=True)
    for variable, mask in masks:
        assert abs(1 - mask.mean() - 0.5) <= 1 / mask.size + 1e-9, variable.path


def test_keras_example_training_is_reproducible() -> None:
    """The example's weights are cached per machine: two trainings from the same seed must agree exactly."""
    from targets.examples.digits_data import load_digits_split
    from targets.examples.keras_digits import train

    split = load_digits_split()
    images = np.ascontiguousarray(split.train_x[:128].transpose(0, 2, 3, 1))
    first, second = (train(images, split.train_y[:128], epochs=1) for _ in range(2))
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
