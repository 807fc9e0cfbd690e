"""PyTorch Mobile lite-interpreter `.ptl` (deprecated by PyTorch; older apps still load it)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from edge_pipeline.plugins import Exporter, Model
from edge_pipeline.types import JsonObject

from .torch_capture import as_unsupported

if TYPE_CHECKING:
    from torch.jit import ScriptModule


class PtlExporter(Exporter):
    name: ClassVar[str] = "ptl"
    format: ClassVar[str] = "ptl"
    suffix: ClassVar[str] = ".ptl"
    frameworks: ClassVar[tuple[str, ...]] = ("torch",)
    precisions: ClassVar[dict[str, str | None]] = {"fp32": None}
    runner: ClassVar[str | None] = "lite-interpreter"
    distributions: ClassVar[tuple[str, ...]] = ("torch",)

    def export(self, model: Model, dest: Path) -> JsonObject:
        import torch

        try:
            scripted = torch.jit.trace(model.module, model.example_inputs)
        except Exception as exc:
            raise as_unsupported("torch.jit.trace failed", exc) from exc
        optimized, note = _optimize_for_mobile(scripted)
        (optimized or scripted)._save_for_lite_interpreter(str(dest))
        return {"optimized_for_mobile": optimized is not None, "note": note}


def _optimize_for_mobile(scripted: ScriptModule) -> tuple[ScriptModule | None, str | None]:
    """`optimize_for_mobile` needs a torch built with XNNPACK; CPU wheels often lack it. Say so, go on."""
    from torch.utils.mobile_optimizer import optimize_for_mobile

    try:
        return optimize_for_mobile(scripted), None
    except Exception as exc:  # RuntimeError from a build without XNNPACK
        first = (str(exc).strip().splitlines() or [repr(exc)])[0][:200]
        return None, f"optimize_for_mobile is unavailable in this torch build ({first}); saved unoptimized"
