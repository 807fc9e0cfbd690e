"""ExecuTorch `.pte` in three recipe steps (torch.export capture, XNNPACK lowering, serialization), so the route
says what each stage ran; reports how many nodes the delegate took."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from edge_pipeline.errors import StageFailed
from edge_pipeline.plugins import Exporter, Model, RecipeStep, StepKind, model_step, write_step
from edge_pipeline.types import JsonObject

from ..coverage import Coverage, compute_nodes, entry, op_name, torch_layer, xnnpack_before
from .torch_capture import as_unsupported, capture, with_preflight

if TYPE_CHECKING:
    from executorch.exir import EdgeProgramManager
    from torch.export import ExportedProgram


@dataclass(frozen=True)
class Captured:
    """The torch.export program and the XNNPACK partitioner's pre-flight of it."""

    program: ExportedProgram
    before: Coverage


@dataclass(frozen=True)
class Lowered:
    """The program lowered to XNNPACK, with what the delegate took (read before serialization rewrites it)."""

    edge: EdgeProgramManager
    metadata: JsonObject


class PteExporter(Exporter):
    name: ClassVar[str] = "pte"
    format: ClassVar[str] = "pte"
    suffix: ClassVar[str] = ".pte"
    frameworks: ClassVar[tuple[str, ...]] = ("torch",)
    precisions: ClassVar[dict[str, str | None]] = {"fp32": None, "int8": "xnnpack-int8", "int4": "torchao-8da4w"}
    runner: ClassVar[str | None] = "executorch"
    distributions: ClassVar[tuple[str, ...]] = ("torch", "executorch", "torchao")

    def steps(self) -> tuple[RecipeStep, ...]:
        return (model_step(StepKind.CAPTURE, "torch.export", lambda model, *_: capture_program(model), ("torch",)),
                model_step(StepKind.LOWER, "xnnpack", lambda model, *_: lower(model), ("executorch",)),
                write_step(StepKind.SERIALIZE, self.name, serialize, ("executorch",), self.suffix))

    def export(self, model: Model, dest: Path) -> JsonObject:
        return serialize(lower(capture_program(model)), dest)


def capture_program(model: Model) -> Model:
    program = capture(model)
    return replace(model, framework="torch.export", module=Captured(program, xnnpack_before(program)))


def lower(model: Model) -> Model:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.devtools.backend_debug import get_delegation_info
    from executorch.exir import to_edge_transform_and_lower

    captured = model.module
    if not isinstance(captured, Captured):
        raise StageFailed("the XNNPACK lowering step needs the torch.export capture step before it")
    try:
        edge = to_edge_transform_and_lower(captured.program, partitioner=[XnnpackPartitioner()])
        info = get_delegation_info(edge.exported_program().graph_module)
        after = _after(edge.exported_program())   # before to_executorch() rewrites the graph (memory planning)
    except Exception as exc:
        raise with_preflight(as_unsupported("ExecuTorch lowering failed", exc), captured.before) from exc
    left_out = Counter({op: b.non_delegated for op, b in info.delegation_by_operator.items() if b.non_delegated})
    metadata: JsonObject = {"backend": "XNNPACK", "delegated_subgraphs": info.num_delegated_subgraphs,
                            "delegated_nodes": info.num_delegated_nodes,
                            "non_delegated_nodes": info.num_non_delegated_nodes,
                            "non_delegated_ops": dict(sorted(left_out.items())),
                            "op_coverage": [captured.before.to_json(), after]}
    return replace(model, framework="executorch.edge", module=Lowered(edge, metadata))


def serialize(model: Model, dest: Path) -> JsonObject:
    lowered = model.module
    if not isinstance(lowered, Lowered):
        raise StageFailed("the .pte serialize step needs the XNNPACK lowering step before it")
    try:
        buffer = lowered.edge.to_executorch().buffer
    except Exception as exc:
        raise as_unsupported("ExecuTorch serialization failed", exc) from exc
    dest.write_bytes(buffer)
    return dict(lowered.metadata)


def _after(program: ExportedProgram) -> JsonObject:
    """Nodes of the lowered program outside any XNNPACK delegate call (portable kernels on the phone)."""
    nodes = compute_nodes(program.graph)
    outside = [n for n in nodes if "executorch_call_delegate" not in str(n.target)]
    return entry("XNNPACK delegate (ExecuTorch)", "after", "the lowered .pte program's graph", len(nodes),
                 [(op_name(n.target), torch_layer(n)) for n in outside]).to_json()
