"""ExecuTorch `.pte`, lowered to XNNPACK; reports how many nodes the delegate took."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from edge_pipeline.plugins import Exporter, Model
from edge_pipeline.types import JsonObject

from ..coverage import compute_nodes, entry, op_name, torch_layer, xnnpack_before
from .torch_capture import as_unsupported, capture, with_preflight

if TYPE_CHECKING:
    from torch.export import ExportedProgram


class PteExporter(Exporter):
    name: ClassVar[str] = "pte"
    format: ClassVar[str] = "pte"
    suffix: ClassVar[str] = ".pte"
    frameworks: ClassVar[tuple[str, ...]] = ("torch",)
    precisions: ClassVar[dict[str, str | None]] = {"fp32": None, "int8": "xnnpack-int8", "int4": "torchao-8da4w"}
    runner: ClassVar[str | None] = "executorch"
    distributions: ClassVar[tuple[str, ...]] = ("torch", "executorch", "torchao")

    def export(self, model: Model, dest: Path) -> JsonObject:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.devtools.backend_debug import get_delegation_info
        from executorch.exir import to_edge_transform_and_lower

        program = capture(model)
        before = xnnpack_before(program)
        try:
            edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
            info = get_delegation_info(edge.exported_program().graph_module)
            after = _after(edge.exported_program())   # before to_executorch() rewrites the graph (memory planning)
            buffer = edge.to_executorch().buffer
        except Exception as exc:
            raise with_preflight(as_unsupported("ExecuTorch lowering failed", exc), before) from exc
        dest.write_bytes(buffer)
        left_out = Counter({op: b.non_delegated for op, b in info.delegation_by_operator.items() if b.non_delegated})
        return {"backend": "XNNPACK", "delegated_subgraphs": info.num_delegated_subgraphs,
                "delegated_nodes": info.num_delegated_nodes, "non_delegated_nodes": info.num_non_delegated_nodes,
                "non_delegated_ops": dict(sorted(left_out.items())),
                "op_coverage": [before.to_json(), after]}


def _after(program: ExportedProgram) -> JsonObject:
    """Nodes of the lowered program outside any XNNPACK delegate call (portable kernels on the phone)."""
    nodes = compute_nodes(program.graph)
    outside = [n for n in nodes if "executorch_call_delegate" not in str(n.target)]
    return entry("XNNPACK delegate (ExecuTorch)", "after", "the lowered .pte program's graph", len(nodes),
                 [(op_name(n.target), torch_layer(n)) for n in outside]).to_json()
