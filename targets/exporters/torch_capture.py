"""torch.export capture shared by every PyTorch exporter, turning failures into `Unsupported`."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from edge_pipeline.errors import Unsupported
from edge_pipeline.plugins import Model

from ..coverage import Coverage

if TYPE_CHECKING:
    from torch.export import ExportedProgram

_OP_PATTERN = re.compile(r"(aten\.[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)?|torch\.ops\.[\w.]+)")


def capture(model: Model) -> ExportedProgram:
    """The model's ExportedProgram; an op that cannot be captured is named in the error."""
    import torch

    try:
        return torch.export.export(model.module, model.example_inputs)
    except Exception as exc:
        raise as_unsupported("torch.export could not capture the model", exc) from exc


def with_preflight(error: Unsupported, before: Coverage) -> Unsupported:
    """A failed conversion's error, with the pre-flight's list of ops the runtime lacks (op and layer)."""
    if before.unsupported:
        listed = ", ".join(f"{u.op} (layer {', '.join(u.layers)})" for u in before.unsupported[:5])
        first = before.unsupported[0]
        error = Unsupported(f"{error}; pre-flight found no {before.runtime} support for: {listed}",
                            op=first.op, layer=first.layers[0])
    return error


def as_unsupported(what: str, exc: BaseException) -> Unsupported:
    text = str(exc)
    match = _OP_PATTERN.search(text)
    first = (text.strip().splitlines() or [repr(exc)])[0][:300]
    return Unsupported(f"{what}: {first}", op=match.group(1) if match else None)
