"""torch.export capture shared by every PyTorch exporter, turning failures into `Unsupported`."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from edge_pipeline.errors import Unsupported
from edge_pipeline.plugins import Model

from ..coverage import Coverage

if TYPE_CHECKING:
    from torch.export import ExportedProgram

_DIAGNOSTIC = re.compile(r"^\S*:\d+: (?:error|warning): ")
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
    """The failure's first line, as the user needs it: an MLIR diagnostic (TFLiteConverter, litert-torch) loses
    its `<unknown>:0: error:` prefix and its `loc(...)` call-site chain, which filled the 300 characters kept."""
    text = str(exc)
    match = _OP_PATTERN.search(text)
    first = without_location((text.strip().splitlines() or [repr(exc)])[0])[:300]
    return Unsupported(f"{what}: {first}", op=match.group(1) if match else None)


def without_location(line: str) -> str:
    """`<unknown>:0: error: loc(callsite(fused[...] at ...)): 'tf.X' op requires ...` -> `'tf.X' op requires ...`."""
    original, line = line, _DIAGNOSTIC.sub("", line, count=1)
    while line.startswith("loc("):
        depth, end = 0, len(line)
        for i, char in enumerate(line[3:], start=3):     # from loc's own "(" to the ")" that closes it
            depth += (char == "(") - (char == ")")
            if depth == 0:
                end = i + 1
                break
        line = line[end:].lstrip(":").strip()
    return line or original
