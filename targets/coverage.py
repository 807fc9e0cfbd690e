"""Op coverage: which ops a target runtime or delegate will not take, before conversion and after.

Every check asks the runtime's own tooling, never a list kept here:
- before (from the torch.export program): the XNNPACK partitioner's own tagging of an edge program, and the
  lowering registry litert-torch converts with;
- after (from the artifact): ops left outside the XNNPACK delegate in the `.pte`; Select TF (`Flex*`) and custom
  ops in a `.tflite` (they need the Flex delegate or a custom kernel on the phone); ONNX nodes the NNAPI (Android)
  and Core ML (iOS) execution providers do not support, from the op tables ONNX Runtime ships in its wheel.

A verdict is a `Coverage` (an exporter reads a "before" one to explain a failed conversion); the report gets its
`to_json()`, which is why the "after" checks return that JSON directly.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge_pipeline.types import JsonObject

if TYPE_CHECKING:
    from torch.export import ExportedProgram
    from torch.fx import Graph, Node

MAX_LISTED = 20    # ops per runtime
MAX_LAYERS = 5     # layers named per op


@dataclass(frozen=True)
class UnsupportedOp:
    """One op a runtime lacks: how many nodes use it and (some of) the layers they belong to."""

    op: str
    count: int
    layers: tuple[str, ...]


@dataclass(frozen=True)
class Coverage:
    """One runtime's verdict. `primary`: the runtime the artifact is built for (its gaps are warnings), not an
    optional accelerator. `unsupported` is capped at MAX_LISTED ops; `unsupported_nodes` counts them all."""

    runtime: str
    stage: str
    primary: bool
    checked_by: str
    nodes: int
    unsupported_nodes: int
    unsupported: tuple[UnsupportedOp, ...]
    note: str | None = None

    def to_json(self) -> JsonObject:
        result: JsonObject = {
            "runtime": self.runtime, "stage": self.stage, "primary": self.primary, "checked_by": self.checked_by,
            "nodes": self.nodes, "unsupported_nodes": self.unsupported_nodes,
            "unsupported": [{"op": u.op, "count": u.count, "layers": list(u.layers)} for u in self.unsupported]}
        if self.note:
            result["note"] = self.note
        return result


def entry(runtime: str, stage: str, checked_by: str, nodes: int, unsupported: Iterable[tuple[str, str | None]],
          note: str | None = None, primary: bool = True) -> Coverage:
    """One runtime's verdict from its unsupported (op, layer) pairs, counted and capped."""
    pairs = list(unsupported)
    counted = Counter(op for op, _ in pairs)
    def layers(op: str) -> tuple[str, ...]:
        return tuple(sorted({layer or "top level" for o, layer in pairs if o == op})[:MAX_LAYERS])

    rows = tuple(UnsupportedOp(op, n, layers(op)) for op, n in sorted(counted.items(), key=lambda kv: (-kv[1], kv[0])))
    return Coverage(runtime, stage, primary, checked_by, nodes, len(pairs), rows[:MAX_LISTED], note)


def torch_layer(node: Node) -> str | None:
    """The innermost module path that produced an FX node ('features.3'), or None at the model's top level."""
    stack = node.meta.get("nn_module_stack") or {}
    path = list(stack.values())[-1][0] if stack else ""
    return path or None


def compute_nodes(graph: Graph) -> list[Node]:
    """The graph's calls, without the `getitem`s that only unpack a call's outputs."""
    import operator

    return [n for n in graph.nodes if n.op == "call_function" and n.target is not operator.getitem]


def xnnpack_before(program: ExportedProgram) -> Coverage:
    """XNNPACK partitioner's tagging of the edge program: untagged nodes run on ExecuTorch's portable kernels."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge

    checked_by = "executorch XnnpackPartitioner.partition on the edge program"
    try:
        edge = to_edge(program).exported_program()
    except Exception as exc:   # e.g. an op outside core ATen: ExecuTorch cannot take it at all
        first = str(exc).strip().splitlines()
        return entry("XNNPACK delegate (ExecuTorch)", "before", checked_by, 0,
                     [(_op_in(first), None)], note=" ".join(first[:2])[:300])
    tagged = XnnpackPartitioner().partition(edge).tagged_exported_program
    nodes = compute_nodes(tagged.graph)
    return entry("XNNPACK delegate (ExecuTorch)", "before", checked_by, len(nodes),
                 [(op_name(n.target), torch_layer(n)) for n in nodes if "delegation_tag" not in n.meta])


def litert_torch_before(program: ExportedProgram) -> Coverage:
    """Ops litert-torch has no lowering for, after its own decompositions: the conversion would stop there."""
    from litert_torch import fx_infra
    from litert_torch.backend import lowerings

    decomposed = fx_infra.safe_run_decompositions(program, fx_infra.decomp.pre_lower_decomp(), can_skip=False)
    nodes = compute_nodes(decomposed.graph)
    return entry("LiteRT builtins (litert-torch lowering)", "before", "litert_torch lowering registry lookup",
                 len(nodes), [(op_name(n.target), torch_layer(n)) for n in nodes if lowerings.lookup(n.target) is None])


def tflite_after(path: Path) -> JsonObject:
    """Select TF (Flex) and custom ops in a .tflite: the standard LiteRT runtime on a phone has no kernel for them."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    from targets.runners.litert_op_profile import layer_name

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(path.read_bytes()))
    unsupported, count = [], 0
    for graph in model.subgraphs:
        for operator in graph.operators:
            count += 1
            code = model.operatorCodes[operator.opcodeIndex]
            if flatbuffer_utils.get_builtin_code_from_operator_code(code) == schema.BuiltinOperator.CUSTOM:
                name = graph.tensors[operator.outputs[0]].name if operator.outputs else b""
                unsupported.append((code.customCode.decode(), layer_name(name)))
    flex = any(op.startswith("Flex") for op, _ in unsupported)
    return entry("LiteRT builtins", "after", "op codes of the .tflite flatbuffer", count, unsupported,
                 note="Flex ops need the Select TF ops delegate linked into the app" if flex else None).to_json()


EP_TABLES = {"NNAPI EP (Android)": "nnapi_supported_ops.md", "Core ML EP (iOS)": "coreml_supported_mlprogram_ops.md"}


def onnx_after(path: Path, stage: str = "after") -> list[JsonObject]:
    """ONNX nodes each mobile execution provider would leave to the CPU EP, per ONNX Runtime's shipped op tables."""
    import onnx
    import onnxruntime.tools.mobile_helpers as helpers

    graph = onnx.load(str(path), load_external_data=False).graph
    results = []
    for runtime, table in EP_TABLES.items():
        supported = _ep_ops(Path(helpers.__file__).parent / table)
        missing = [(f"{n.domain or 'ai.onnx'}:{n.op_type}", n.name or None) for n in graph.node
                   if f"{n.domain or 'ai.onnx'}:{n.op_type}" not in supported]
        results.append(entry(runtime, stage, f"onnxruntime {table}", len(graph.node), missing,
                             note="unsupported nodes fall back to ORT's CPU kernels (partitioned, slower)",
                             primary=False).to_json())
    return results


def _ep_ops(table: Path) -> set[str]:
    ops = set()
    for line in table.read_text().splitlines():
        cells = line.strip().split("|")
        if line.startswith("|") and len(cells) == 4 and ":" in cells[1]:
            ops.add(cells[1].strip())
    return ops


def op_name(target: object) -> str:
    """An FX node target's op name: ExecuTorch's EdgeOpOverload wraps the aten OpOverload ("aten.cumsum.default")."""
    try:
        return str(target._op)   # type: ignore[attr-defined]
    except AttributeError:
        return str(target)


def _op_in(lines: list[str]) -> str:
    import re

    match = re.search(r"(aten\.[\w.]+)", " ".join(lines))
    return match.group(1) if match else "unknown op"
