"""The bridges rewrite one float32 image-like input (layout, fixed shapes); anything else is refused by name."""
from __future__ import annotations

import numpy as np

from edge_pipeline.errors import Unsupported
from edge_pipeline.plugins import DataBundle
from edge_pipeline.sources.user_data import describe


def single_float_input(data: DataBundle, bridge: str) -> np.ndarray:
    example = data.example
    if len(example.names) != 1 or example.arrays[0].dtype != np.float32:
        raise Unsupported(f"the {bridge} bridge carries models with one float32 input; this model takes "
                          f"{describe(example)}: build the formats its own framework converts directly "
                          f"(PyTorch: pte, tflite, onnx; Keras: tflite, tfjs, onnx)")
    return np.array(example.arrays[0])
