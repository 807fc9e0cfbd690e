"""Real architectures for the bridge tests, built offline with random weights and fixed seeds.

`keras_mobilenet_v2` is `keras.applications.MobileNetV2` itself (ZeroPadding2D before each strided depthwise
conv, BatchNorm, ReLU6, residual adds, global pooling, Dense); `torch_mobilenet_v2` is the same structure
written in PyTorch at a reduced width and depth. Weights are random; so that outputs depend on the input (a
random MobileNetV2 at initialization gives every input the same logits: the signal fades block by block), the
BatchNorm statistics are set from one batch of images, as a trained network's would be (data-dependent
initialization), gamma and beta are randomized, and the classifier bias is centred on that batch, so the
arg-max spreads over the classes and top-1 agreement means something. The images are smooth random patterns
(8x8 random colours upsampled to 160x160). This file is copied into each test project and named in its config.
"""
from __future__ import annotations

import numpy as np

SIZE = 160
CLASSES = 10
EVAL_SAMPLES = 32


def keras_mobilenet_v2():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(SIZE, SIZE, 3), alpha=0.35,
                                           classes=CLASSES, classifier_activation=None)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0                  # one training-mode pass sets the moving statistics to the batch's
    model(_images(16, True, 10), training=True)
    rng = np.random.default_rng(0)
    for layer in norms:
        layer.momentum = 0.99
        gamma, beta, mean, var = layer.get_weights()
        layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape).astype(np.float32),
                           rng.normal(0.0, 0.2, beta.shape).astype(np.float32), mean, var])
    dense = model.get_layer("predictions")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel, bias - np.asarray(model(_images(32, True, 11), training=False)).mean(axis=0)])
    return model


def torch_mobilenet_v2():
    import torch
    from torch import nn

    def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> list:
        # like Keras: 'valid' padding after an explicit ZeroPad2d for strided convs, 'same' otherwise
        pad = [nn.ZeroPad2d((0, 1, 0, 1))] if stride == 2 else []
        layers = [*pad, nn.Conv2d(cin, cout, kernel, stride, 0 if stride == 2 else kernel // 2, groups=groups,
                                  bias=False), nn.BatchNorm2d(cout)]
        return layers + [nn.ReLU6()] if act else layers

    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
            super().__init__()
            hidden = cin * expand
            layers = conv_bn(cin, hidden, 1) if expand != 1 else []
            layers += conv_bn(hidden, hidden, 3, stride, groups=hidden) + conv_bn(hidden, cout, 1, act=False)
            self.block = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.block(x) if self.residual else self.block(x)

    class MobileNetV2Small(nn.Module):
        # (expansion, channels, repeats, first stride): MobileNetV2's table at width 0.5, one block fewer per stage
        SETTINGS = ((1, 8, 1, 1), (6, 12, 2, 2), (6, 16, 2, 2), (6, 32, 3, 2), (6, 48, 2, 1), (6, 80, 2, 2))

        def __init__(self) -> None:
            super().__init__()
            layers: list = conv_bn(3, 16, 3, 2)
            cin = 16
            for expand, cout, repeats, stride in self.SETTINGS:
                for i in range(repeats):
                    layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
                    cin = cout
            layers += conv_bn(cin, 320, 1)
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Linear(320, CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(self.features(x).mean(dim=(2, 3)))

    torch.manual_seed(0)
    model = MobileNetV2Small()
    norms = [module for module in model.modules() if isinstance(module, nn.BatchNorm2d)]
    with torch.no_grad():
        for module in norms:
            module.momentum = 1.0             # one training-mode pass sets the running statistics to the batch's
        model.train()(torch.from_numpy(_images(16, False, 10)))
        for module in norms:
            module.momentum = 0.1
            module.weight.uniform_(0.5, 1.5)
            module.bias.normal_(0.0, 0.2)
        model.eval()
        model.classifier.bias -= model(torch.from_numpy(_images(32, False, 11))).mean(dim=0)
    return model


def _images(count: int, channels_last: bool, seed: int) -> np.ndarray:
    """Smooth random patterns: 8x8 random colours in [-1, 1], each cell 20x20 pixels."""
    low = np.random.default_rng(seed).uniform(-1.0, 1.0, (count, 8, 8, 3)).astype(np.float32)
    images = np.repeat(np.repeat(low, SIZE // 8, axis=1), SIZE // 8, axis=2)
    return np.ascontiguousarray(images if channels_last else images.transpose(0, 3, 1, 2))


def _labels(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, CLASSES, count)


def keras_example():
    return _images(1, True, 0)


def keras_calibration():
    return [_images(16, True, 1)]


def keras_evaluate():
    return [(_images(EVAL_SAMPLES, True, 2), _labels(EVAL_SAMPLES, 3))]


def torch_example():
    return _images(1, False, 0)


def torch_calibration():
    return [_images(16, False, 1)]


def torch_evaluate():
    return [(_images(EVAL_SAMPLES, False, 2), _labels(EVAL_SAMPLES, 3))]
