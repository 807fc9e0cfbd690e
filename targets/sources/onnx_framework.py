"""ONNX specifics of the source stage: the file's hash, initializer sizes, ONNX Runtime reference outputs."""
from __future__ import annotations

import numpy as np

from edge_pipeline.fsutil import sha256_file
from edge_pipeline.plugins import DataBundle, Model
from edge_pipeline.tensors import Tensors, collect_outputs


def fingerprint(model: Model) -> str:
    return sha256_file(model.module.path)


def _initializers(model: Model) -> list[np.ndarray]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model.module.path))
    return [numpy_helper.to_array(t) for t in graph.graph.initializer]


def count_params(model: Model) -> int:
    return int(sum(a.size for a in _initializers(model) if a.dtype.kind == "f"))


def weights_bytes(model: Model) -> int:
    return int(sum(a.nbytes for a in _initializers(model)))


def reference_outputs(model: Model, data: DataBundle) -> Tensors:
    return collect_outputs(model.module.named_outputs, data.eval_inputs, data.batch)
