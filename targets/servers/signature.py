"""signature.json: the tensors a served model takes and gives, as edgepipe's server apps check each request
against them. Written by the exporters, read (typed, one line on any damage) by the runners."""
from __future__ import annotations

import json
from dataclasses import dataclass

from edge_pipeline.errors import InputError
from edge_pipeline.tensors import TensorSpec

SIGNATURE_FILE = "signature.json"
BATCH_KINDS = ("dynamic", "static")


@dataclass(frozen=True)
class ServedSignature:
    """`batch`: "dynamic" when requests of any row count are taken (and may be batched together), else "static"
    (each request has the example's rows)."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[str, ...]
    batch: str

    def to_json(self) -> str:
        return json.dumps({"inputs": [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in self.inputs],
                           "outputs": list(self.outputs), "batch": self.batch}, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: bytes | str, where: str) -> "ServedSignature":
        try:
            data = json.loads(text)
            inputs = tuple(TensorSpec(_name(i["name"]), tuple(_dim(d) for d in i["shape"]), _name(i["dtype"]))
                           for i in data["inputs"])
            outputs = tuple(_name(o) for o in data["outputs"])
            batch = data.get("batch", "static")
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{where} is not an edgepipe signature: {type(exc).__name__}: {exc}") from exc
        if not inputs or not outputs or batch not in BATCH_KINDS:
            raise InputError(f"{where} is not an edgepipe signature: it names no inputs, no outputs or batch "
                             f"{batch!r} (one of {', '.join(BATCH_KINDS)})")
        return cls(inputs, outputs, batch)


def _name(value: object) -> str:
    if not isinstance(value, str) or not value or not value.isprintable():
        raise ValueError(f"{value!r} is not a tensor name or dtype")
    return value


def _dim(value: object) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{value!r} is not a dimension")
    return value
