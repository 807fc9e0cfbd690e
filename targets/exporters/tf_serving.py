"""TensorFlow Serving's model layout: `<model name>/<version>/` holding a SavedModel whose `serving_default`
signature takes and returns the source's own tensor names, and TF Serving's warm-up requests in `assets.extra/`.

Converters name a Keras model's outputs `output_0`, `output_1`, ...; a client of a server calls them by the names
the model was trained with, so the signature is rebuilt around the converted function: each source output is
matched to the converted output that computes it (same values on the example inputs), never by position.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from edge_pipeline.errors import Unsupported
from edge_pipeline.plugins import Exporter, Model
from edge_pipeline.tensors import Tensors
from edge_pipeline.types import JsonObject
from targets.sources.keras_source import run_tf_named

from ..servers.tf_serving_layout import MODEL_NAME, SIGNATURE, VERSION, WARMUP_FILE, version_dir
from .savedmodel import saved_model_dir
from .torch_capture import as_unsupported

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import tensorflow as tf

class TfServingExporter(Exporter):
    name: ClassVar[str] = "tf-serving"
    format: ClassVar[str] = "tfserving"
    suffix: ClassVar[str] = "-tfserving"
    is_directory: ClassVar[bool] = True
    frameworks: ClassVar[tuple[str, ...]] = ("tensorflow",)
    precisions: ClassVar[dict[str, str | None]] = {"fp32": None}
    runner: ClassVar[str | None] = "tf-serving-signature"
    distributions: ClassVar[tuple[str, ...]] = ("tensorflow-cpu", "tensorflow-serving-api")

    def export(self, model: Model, dest: Path) -> JsonObject:
        import tensorflow as tf

        example = Tensors(tuple(model.input_names), tuple(np.asarray(a) for a in model.example_inputs))
        source = run_tf_named(model.module, example)
        target = version_dir(dest)
        with saved_model_dir(model) as folder:
            loaded = tf.saved_model.load(str(folder))
            converted = loaded.signatures[SIGNATURE]
            inputs = _input_specs(converted, model.input_names)
            renames = _match_outputs(converted, inputs, example, _source_named(source, model.output_names))
            module = tf.Module()
            module.loaded = loaded    # the variables the signature reads are saved with it

            @tf.function(input_signature=[spec for _, spec in inputs])
            def serve(*args: tf.Tensor) -> dict[str, tf.Tensor]:
                out = converted(**{key: value for (key, _), value in zip(inputs, args)})
                return {name: tf.identity(out[key], name=name) for name, key in renames.items()}

            try:
                tf.saved_model.save(module, str(target), signatures={SIGNATURE: serve.get_concrete_function()})
            except Exception as exc:
                raise as_unsupported("TensorFlow could not save the serving SavedModel", exc) from exc
        _deterministic_fingerprint(target / "fingerprint.pb")
        _write_warmup(target / WARMUP_FILE, [(spec.name, example.as_dict()[spec.name]) for _, spec in inputs])
        return {"converter": f"tensorflow {tf.__version__} SavedModel ({SIGNATURE})", "model_name": MODEL_NAME,
                "version": int(VERSION), "inputs": [spec.name for _, spec in inputs], "outputs": list(renames),
                "warmup_requests": 1,
                "not_exercised": "TF Serving's own server (REST/gRPC front end, request batching, warm-up replay): its "
                                 "binary cannot be installed here; validated through TensorFlow loading the "
                                 "serving_default signature TF Serving loads"}


def _input_specs(function: Callable[..., Mapping[str, tf.Tensor]],
                 names: tuple[str, ...]) -> list[tuple[str, tf.TensorSpec]]:
    """(converted keyword, spec under the source's name) per input, in the source's order."""
    import tensorflow as tf

    declared: dict[str, tf.TensorSpec] = dict(function.structured_input_signature[1])
    if set(declared) == set(names):
        keys = list(names)
    elif len(declared) == len(names) == 1:
        keys = list(declared)
    else:
        raise Unsupported(f"the SavedModel's inputs {sorted(declared)} are not the source's {list(names)}")
    return [(key, tf.TensorSpec(declared[key].shape, declared[key].dtype, name=name)) for key, name in zip(keys, names)]


def _match_outputs(function: Callable[..., Mapping[str, tf.Tensor]], inputs: list[tuple[str, tf.TensorSpec]],
                   example: Tensors, source: list[tuple[str, np.ndarray]]) -> dict[str, str]:
    """Source output name -> the converted output computing it: equal values on the example (a unique match)."""
    ours = example.as_dict()
    converted = {k: v.numpy() for k, v in function(**{key: ours[spec.name] for key, spec in inputs}).items()}
    renames: dict[str, str] = {}
    for name, expected in source:
        same = [key for key, value in converted.items() if key not in renames.values()
                and value.shape == expected.shape and np.allclose(value, expected, rtol=1e-4, atol=1e-5)]
        if name in same:
            same = [name]
        if len(same) != 1:
            raise Unsupported(f"output '{name}' matches {len(same)} of the SavedModel's outputs "
                              f"({', '.join(sorted(converted))}) on the example inputs")
        renames[name] = same[0]
    return renames


def _source_named(outputs: list[tuple[str, np.ndarray]], names: tuple[str, ...]) -> list[tuple[str, np.ndarray]]:
    """The TF-side model's outputs under the source's names. A bridged model (onnx2tf) calls them `output_0`,
    `output_1`, ... in the source's order; validation then checks every output by name against the source."""
    if not names or {n for n, _ in outputs} == set(names):
        return outputs
    if len(names) != len(outputs):
        raise Unsupported(f"the TensorFlow model has {len(outputs)} output(s), the source {len(names)}: "
                          f"{', '.join(names)}")
    numbered = sorted(outputs, key=lambda item: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", item[0])])
    return [(name, value) for name, (_, value) in zip(names, numbered)]


def _deterministic_fingerprint(path: Path) -> None:
    """TensorFlow stamps each save's fingerprint with a random UUID; it becomes one derived from the other
    fingerprint fields (the graph, signature and checkpoint hashes), so the same model gives the same bytes."""
    from tensorflow.core.protobuf import fingerprint_pb2

    fingerprint = fingerprint_pb2.FingerprintDef.FromString(path.read_bytes())
    fingerprint.ClearField("uuid")
    digest = hashlib.sha256(fingerprint.SerializeToString(deterministic=True)).digest()
    fingerprint.uuid = str(int.from_bytes(digest[:16], "big"))
    path.write_bytes(fingerprint.SerializeToString(deterministic=True))


def _write_warmup(path: Path, inputs: list[tuple[str, np.ndarray]]) -> None:
    """One PredictRequest on the example inputs, as TF Serving replays at load (so the first client call is not
    the one that pays for graph initialisation)."""
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=MODEL_NAME, signature_name=SIGNATURE))
    for name, value in inputs:
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(log.SerializeToString())
