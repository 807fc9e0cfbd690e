"""Runs a TF Serving layout artifact through its `serving_default` signature in TensorFlow, the graph and
signature TF Serving loads. TF Serving's own server binary is not installable here: its HTTP/gRPC front end and
request batching are not exercised, and figures are TensorFlow's in this process."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.plugins import Runner, Session
from edge_pipeline.tensors import TensorSpec
from edge_pipeline.types import JsonObject

from ..servers.tf_serving_layout import MODEL_NAME, SIGNATURE, VERSION, version_dir

if TYPE_CHECKING:
    import tensorflow as tf


class TfServingSignatureRunner(Runner):
    name: ClassVar[str] = "tf-serving-signature"
    runtime: ClassVar[str] = "TensorFlow SavedModel serving signature"
    distribution: ClassVar[str] = "tensorflow-cpu"
    suffixes: ClassVar[dict[str, str]] = {f"{MODEL_NAME}/{VERSION}/saved_model.pb": "tfserving"}

    def preload(self) -> None:
        import tensorflow  # noqa: F401

    def open(self, path: Path, threads: int, variant: str | None = None) -> TfServingSession:
        import tensorflow as tf

        if threads:   # settable only before TensorFlow runs its first op in this process
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
            except RuntimeError:
                pass
        folder = version_dir(path)
        if not (folder / "saved_model.pb").is_file():
            raise InputError(f"{path} is not a TF Serving layout: {MODEL_NAME}/{VERSION}/saved_model.pb is missing")
        try:
            loaded = tf.saved_model.load(str(folder))
            function = loaded.signatures[SIGNATURE]
        except Exception as exc:
            raise InputError(f"{path}: TensorFlow cannot load its '{SIGNATURE}' signature: {exc}") from exc
        return TfServingSession(loaded, function)

    def signature(self, path: Path) -> JsonObject:
        """The names, dtypes and shapes a client sends and receives (None dims: any size)."""
        session = self.open(path, 0)
        function = session.function
        return {"inputs": [_describe(spec) for spec in function.structured_input_signature[1].values()],
                "outputs": [_describe(spec) | {"name": name} for name, spec in function.structured_outputs.items()]}


class TfServingSession(Session):
    def __init__(self, loaded: object, function: tf.types.experimental.ConcreteFunction):
        self._loaded, self.function = loaded, function   # the loaded object owns the signature's variables
        declared = function.structured_input_signature[1]
        self.input_specs = [TensorSpec(name, tuple(d if d is not None else ("batch" if i == 0 else f"dim{i}")
                                                   for i, d in enumerate(spec.shape.as_list())),
                                       spec.dtype.name) for name, spec in declared.items()]
        self.output_names = list(function.structured_outputs)

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        import tensorflow as tf

        feed = {spec.name: tf.constant(value) for spec, value in zip(self.input_specs or [], inputs, strict=True)}
        out = self.function(**feed)
        return [out[name].numpy() for name in self.output_names or []]


def _describe(spec: tf.TensorSpec) -> JsonObject:
    return {"name": spec.name, "dtype": spec.dtype.name, "shape": spec.shape.as_list()}
