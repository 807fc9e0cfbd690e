"""TensorFlow / Keras specifics of the source stage: weights fingerprint, sizes, reference outputs."""
from __future__ import annotations

import hashlib

import numpy as np

from edge_pipeline.fsutil import sha256_file
from edge_pipeline.plugins import DataBundle, Model
from targets.sources.keras_source import SavedModelHandle, run_tf_named
from edge_pipeline.tensors import Tensors, collect_outputs


def fingerprint(model: Model) -> str:
    module = model.module
    digest = hashlib.sha256(type(module).__qualname__.encode())
    if isinstance(module, SavedModelHandle):
        for path in sorted(p for p in module.path.rglob("*") if p.is_file()):
            digest.update(f"{path.relative_to(module.path)}:{sha256_file(path)};".encode())
        return digest.hexdigest()
    digest.update(module.to_json().encode())
    for weight in module.weights:
        value = np.ascontiguousarray(weight.numpy())
        digest.update(f"{weight.path}:{value.dtype}:{value.shape};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def count_params(model: Model) -> int:
    if isinstance(model.module, SavedModelHandle):
        variables = model.module.keepalive.trainable_variables  # type: ignore[attr-defined]
        return int(sum(np.prod(v.shape) for v in variables))
    return int(model.module.count_params())


def weights_bytes(model: Model) -> int:
    if isinstance(model.module, SavedModelHandle):
        variables = model.module.keepalive.variables  # type: ignore[attr-defined]
        return int(sum(np.prod(v.shape) * v.dtype.size for v in variables))
    return int(sum(np.asarray(w.numpy()).nbytes for w in model.module.weights))


def reference_outputs(model: Model, data: DataBundle) -> Tensors:
    return collect_outputs(lambda batch: run_tf_named(model.module, batch), data.eval_inputs, data.batch)
