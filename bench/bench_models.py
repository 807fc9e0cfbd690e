"""Models and data for the benchmarks. MobileNetV2 is written out here (torchvision does not import
beside the CPU torch build); it is randomly initialised, so its accuracy means nothing and its
latency and size are what the benchmark is for."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

INPUT = (1, 3, 224, 224)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                   nn.ReLU6(), nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


class MobileNetV2(nn.Module):
    # (expansion, channels, repeats, stride) as in Sandler et al. 2018
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))

    def __init__(self, classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6()]
        cin = 32
        for expand, cout, repeats, stride in self.SETTINGS:
            for i in range(repeats):
                layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
                cin = cout
        layers += [nn.Conv2d(cin, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def mobilenet_v2() -> nn.Module:
    torch.manual_seed(0)
    model = MobileNetV2().eval()
    with torch.no_grad():   # give BatchNorm non-trivial statistics, as a trained net would have
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


def _images(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, *INPUT[1:]), dtype=np.float32)


def example_inputs() -> np.ndarray:
    return _images(1, 0)


def calibration() -> list[np.ndarray]:
    return [_images(8, 1 + i) for i in range(4)]


def evaluate():
    """Random images and labels: agreement with the float model is meaningful, accuracy is not."""
    for i in range(4):
        yield _images(16, 100 + i), np.random.default_rng(200 + i).integers(0, 1000, 16)


def mobilenet_calibration() -> list[np.ndarray]:
    """The same 32 calibration images the edgepipe build uses, for the hand-written vendor script."""
    return calibration()


def fashion_model() -> nn.Module:
    from targets.examples.fashion_mnist import load

    return load()[0].module


def fashion_calibration() -> list[np.ndarray]:
    from targets.examples.fashion_mnist import load

    return [load()[1].calibration.arrays[0]]


LARGE_EVAL = 2000


def large_evaluate():
    """2,000 images of 224x224 in batches of 50: 1.2 GB of float32 if held at once."""
    for i in range(LARGE_EVAL // 50):
        yield _images(50, 1000 + i), np.random.default_rng(2000 + i).integers(0, 1000, 50)
