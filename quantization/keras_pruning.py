"""Pruning for Keras 3 models (tensorflow-model-optimization does not support Keras 3, see STACK.md).

- structured: the model is rebuilt from its config with fewer filters/units in each prunable Conv2D/Dense
  (the filters with the smallest L2 norm go), and the kept weights are copied over, sliced along the pruned
  channels in every layer that reads them (BatchNorm, DepthwiseConv2D, the next Conv2D/Dense, Dense after
  Flatten). A layer whose channels reach a multi-input layer (Add, Concatenate), an unknown layer or a model
  output keeps all its channels: those are coupled and are listed as skipped.
- unstructured: global L1 magnitude over kernels; the mask is kept through fine-tuning and applied again after it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.types import JsonObject

if TYPE_CHECKING:
    import keras

PRODUCERS = ("Conv2D", "Dense")
PASSTHROUGH = ("InputLayer", "BatchNormalization", "Activation", "ReLU", "LeakyReLU", "Dropout", "MaxPooling2D",
               "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "ZeroPadding2D",
               "DepthwiseConv2D", "Flatten")


def structured(model: keras.Model, amount: float) -> tuple[keras.Model, list[str]]:
    """A new, smaller model with the kept weights, and the layers left whole because they are coupled."""
    layers = {layer.name: layer for layer in model.layers}
    inbound = _inbound(model)
    keep_out = {name: _strongest(layer, amount) for name, layer in layers.items()
                if type(layer).__name__ in PRODUCERS and _groups(layer) == 1}
    skipped: set[str] = set()
    while True:   # drop producers whose pruned channels reach something that cannot follow them
        blocked = _propagate(model, layers, inbound, {k: v for k, v in keep_out.items() if k not in skipped})[1]
        if not blocked - skipped:
            break
        skipped |= blocked
    keep_out = {k: v for k, v in keep_out.items() if k not in skipped}
    keep_in, _ = _propagate(model, layers, inbound, keep_out)
    config = model.get_config()
    for entry in config["layers"]:
        entry.pop("build_config", None)   # stored input shapes: the rebuilt layers take the new ones
        name = entry["config"]["name"]
        if name in keep_out:
            key = "filters" if "filters" in entry["config"] else "units"
            entry["config"][key] = len(keep_out[name])
    import keras

    rebuild = type(model).from_config if isinstance(model, keras.Sequential) else keras.Model.from_config
    smaller = rebuild(config)
    for layer in smaller.layers:
        old = layers[layer.name]
        layer.set_weights([_slice(w, old, keep_in.get(layer.name), keep_out.get(layer.name))
                           for w in old.get_weights()])
    return smaller, sorted(skipped)


def _strongest(layer: keras.layers.Layer, amount: float) -> np.ndarray:
    kernel = layer.get_weights()[0]
    norms = np.sqrt((kernel.reshape(-1, kernel.shape[-1]) ** 2).sum(axis=0))
    count = max(1, int(round(kernel.shape[-1] * (1 - amount))))
    return np.sort(np.argsort(-norms, kind="stable")[:count])


def _groups(layer: keras.layers.Layer) -> int:
    """Convolution groups (Conv layers have them; other layers are one group)."""
    try:
        return int(layer.groups or 1)
    except AttributeError:
        return 1


def _depth_multiplier(layer: keras.layers.Layer) -> int:
    """Output channels per input channel of a depthwise convolution (1 for every other layer)."""
    try:
        return int(layer.depth_multiplier)
    except AttributeError:
        return 1


def _inbound(model: keras.Model) -> dict[str, list[str]]:
    """Layer name -> names of the layers feeding it (Sequential: the one before)."""
    import keras

    if isinstance(model, keras.Sequential):
        names = [layer.name for layer in model.layers]
        return {name: names[i - 1:i] for i, name in enumerate(names)}
    feeds: dict[str, list[str]] = {}
    for entry in model.get_config()["layers"]:
        found: list[str] = []
        _history(entry.get("inbound_nodes", []), found)
        feeds[entry["config"]["name"]] = found
    return feeds


def _history(value: object, found: list[str]) -> None:
    if isinstance(value, dict):
        if "keras_history" in value:
            found.append(value["keras_history"][0])
        for item in value.values():
            _history(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _history(item, found)


def _propagate(model: keras.Model, layers: dict[str, keras.layers.Layer], inbound: dict[str, list[str]],
               keep_out: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], set[str]]:
    """Kept indices on the last axis of every layer's input, and the producers whose pruning cannot propagate."""
    kept: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    keep_in: dict[str, np.ndarray] = {}
    blocked: set[str] = set()
    outputs = {t._keras_history[0].name for t in model.outputs}   # noqa: SLF001
    for name, layer in layers.items():
        sources = [s for s in inbound.get(name, []) if s in kept]
        kind = type(layer).__name__
        if sources and (len(inbound[name]) > 1 or kind not in PRODUCERS + PASSTHROUGH or _groups(layer) != 1
                        or _depth_multiplier(layer) != 1):
            blocked |= {origin[s] for s in sources}
            continue
        if sources:
            keep_in[name] = kept[sources[0]]
        if name in keep_out:
            kept[name], origin[name] = keep_out[name], name
        elif sources and kind not in PRODUCERS:
            keep = kept[sources[0]]
            if kind == "Flatten":
                shape = layer.input.shape[1:]
                keep = np.flatnonzero(np.isin(np.arange(int(np.prod(shape))) % shape[-1], keep))
            kept[name], origin[name] = keep, origin[sources[0]]
        if name in outputs and name in kept:
            blocked.add(origin[name])
    return keep_in, blocked


def _slice(weight: np.ndarray, layer: keras.layers.Layer, keep_in: np.ndarray | None,
           keep_out: np.ndarray | None) -> np.ndarray:
    kind = type(layer).__name__
    if kind in PRODUCERS:
        if weight.ndim >= 2 and keep_in is not None:
            weight = np.take(weight, keep_in, axis=weight.ndim - 2)
        return weight if keep_out is None else np.take(weight, keep_out, axis=weight.ndim - 1)
    if keep_in is None:
        return weight
    axis = weight.ndim - 2 if kind == "DepthwiseConv2D" and weight.ndim == 4 else weight.ndim - 1
    return np.take(weight, keep_in, axis=axis)


def kernels(model: keras.Model) -> list[keras.Variable]:
    return [w for layer in model.layers for w in layer.weights
            if type(layer).__name__ in PRODUCERS + ("DepthwiseConv2D",) and "kernel" in w.path.rsplit("/", 1)[-1]]


def unstructured_masks(model: keras.Model, amount: float,
                       per_layer: bool = False) -> list[tuple[keras.Variable, np.ndarray]]:
    """L1: the `amount` share of kernel weights with the smallest magnitude, across all layers (global) or in
    each layer."""
    variables = kernels(model)
    if not variables:
        raise InputError("nothing to prune: the model has no Conv2D, DepthwiseConv2D or Dense kernels")
    if per_layer:
        return [(v, _keep_largest(np.abs(v.numpy()), amount)) for v in variables]
    magnitudes = np.concatenate([np.abs(v.numpy()).ravel() for v in variables])
    threshold = np.partition(magnitudes, int(amount * len(magnitudes)))[int(amount * len(magnitudes))]
    return [(v, (np.abs(v.numpy()) >= threshold).astype(v.dtype)) for v in variables]


def _keep_largest(magnitudes: np.ndarray, amount: float) -> np.ndarray:
    """Mask zeroing exactly round(amount * size) of the smallest entries (ties broken by position)."""
    mask = np.ones(magnitudes.size, dtype=magnitudes.dtype)
    mask[np.argsort(magnitudes.ravel(), kind="stable")[:int(round(amount * magnitudes.size))]] = 0
    return mask.reshape(magnitudes.shape)


def apply_masks(masks: list[tuple[keras.Variable, np.ndarray]]) -> None:
    for variable, mask in masks:
        variable.assign(variable.numpy() * mask)


def measure(model: keras.Model) -> JsonObject:
    """Parameters, MACs (Conv2D, DepthwiseConv2D, Dense) and the share of exactly-zero kernel weights."""
    macs = 0
    for layer in model.layers:
        kind = type(layer).__name__
        weights = layer.get_weights()
        if kind in ("Conv2D", "DepthwiseConv2D") and weights:
            spatial = int(np.prod(layer.output.shape[1:-1]))
            macs += spatial * int(weights[0].size) // (1 if kind == "DepthwiseConv2D" else _groups(layer))
        elif kind == "Dense" and weights:
            macs += int(np.prod(layer.output.shape[1:-1] or [1])) * int(weights[0].size)
    values = [v.numpy() for v in kernels(model)]
    zeros = sum(int((v == 0).sum()) for v in values)
    return {"params": int(model.count_params()), "macs": int(macs),
            "sparsity": round(zeros / max(1, sum(v.size for v in values)), 4)}
