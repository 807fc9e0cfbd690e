"""Profile stage for an artifact edgepipe did not build: read its input signature, run it on given or
generated inputs, time it, and compare with a reference artifact when one is given."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import registry
from ..errors import InputError
from ..host import package_version
from ..validate import compare, tolerance_for
from .datafiles import load_arrays
from .measure_stage import _open, create_runner, measure_latency, op_profile


def run(job: dict[str, Any]) -> dict[str, Any]:
    artifact = Path(job["artifact"])
    runner = create_runner(job)
    variants = tuple(getattr(runner, "variants", (None,)))
    session = _open(runner, artifact, 1, variants[0])
    inputs = _inputs(job.get("inputs"), getattr(session, "input_shapes", None), artifact)
    batch = inputs.shape[0] if job.get("inputs") is None else (session.input_shapes or [[1]])[0][0]
    outputs = np.concatenate([session.run([np.ascontiguousarray(inputs[i:i + batch])])[0]
                              for i in range(0, len(inputs) - batch + 1, batch)])
    result: dict[str, Any] = {
        "runtime": getattr(session, "runtime_label", runner.runtime),
        "runtime_version": getattr(session, "runtime_version", None) or package_version(runner.distribution),
        "input_shape": list(inputs[:batch].shape), "input_dtypes": getattr(session, "input_dtypes", None),
        "output_shape": list(outputs.shape[1:]), "sample_outputs": outputs[:8].tolist(),
        "latency": measure_latency(runner, artifact, session, np.ascontiguousarray(inputs[:batch]),
                                   job["profile"], job["target"]),
    }
    result["op_profile"] = op_profile(runner, artifact, np.ascontiguousarray(inputs[:batch]), job["profile"]["runs"])
    if job.get("reference"):
        ref_runner = registry.create("runner", job["reference_runner"])
        ref_session = _open(ref_runner, Path(job["reference"]), 1, tuple(getattr(ref_runner, "variants", (None,)))[0])
        reference = np.concatenate([ref_session.run([np.ascontiguousarray(inputs[i:i + batch])])[0]
                                    for i in range(0, len(inputs) - batch + 1, batch)])
        result["validation"] = compare(outputs, reference, tolerance_for(job.get("precision", "int8")))
    return result


def _inputs(path: str | None, shapes: list[list[int]] | None, artifact: Path) -> np.ndarray:
    if path is not None:
        arrays = load_arrays(Path(path))
        if not arrays:
            raise InputError(f"{path} holds no arrays")
        x = np.ascontiguousarray(next(iter(arrays.values())), dtype=np.float32)
        if shapes and list(x.shape[1:]) != list(shapes[0][1:]):
            raise InputError(f"inputs in {path} have sample shape {list(x.shape[1:])}, the model expects {shapes[0]}")
        return x
    if not shapes:
        raise InputError(f"{artifact} does not declare fixed input shapes: pass --inputs FILE.npz")
    if len(shapes) != 1:
        raise InputError(f"{artifact} takes {len(shapes)} inputs; edgepipe profiles single-input models")
    return np.random.default_rng(0).standard_normal(shapes[0]).astype(np.float32)
