"""Per-op time for `.tflite` by isolated-op replay.

LiteRT's Python interpreter has no op profiler (the C++ `benchmark_model --enable_op_profiling` is not shipped
on any package registry), so each operator of the main subgraph is cut out into a one-op model (same tensors,
weights and quantization parameters, read and written with LiteRT's own flatbuffer utilities), run in the
LiteRT interpreter with its default XNNPACK delegate and timed. Each figure includes one interpreter invoke's
fixed overhead (reported as `invoke_floor_ms`, the cheapest op's time); ops fused differently in the full graph
cost slightly differently there, so the report labels the method.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_pipeline.types import JsonObject

if TYPE_CHECKING:
    from ai_edge_litert.schema_py_generated import ModelT, OperatorT, TensorT

METHOD = "LiteRT isolated-op replay (each op timed alone in the interpreter, XNNPACK, 1 thread)"


def op_profile(path: Path, runs: int) -> JsonObject:
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(path.read_bytes()))
    graph = model.subgraphs[0]
    op_names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    rows: list[JsonObject] = []
    for index, operator in enumerate(graph.operators):
        code = model.operatorCodes[operator.opcodeIndex]
        builtin = flatbuffer_utils.get_builtin_code_from_operator_code(code)
        custom = builtin == schema.BuiltinOperator.CUSTOM
        op = code.customCode.decode() if custom else op_names.get(builtin, str(builtin))
        output_name = graph.tensors[operator.outputs[0]].name if operator.outputs else b""
        row: JsonObject = {"op": op, "name": f"{op} #{index}", "layer": layer_name(output_name),
                           "node": str(index)}
        try:
            row["avg_ms"], row["delegated"] = _time_alone(model, operator, runs)
        except Exception as exc:   # an op that cannot run alone (e.g. it reads a variable) stays listed, untimed
            row.update(avg_ms=None, delegated=False, note=f"not timed alone: {str(exc).splitlines()[0][:120]}")
        rows.append(row)
    timed = [t for t in (r["avg_ms"] for r in rows) if isinstance(t, float)]
    return {"source": METHOD, "ops": rows, "invoke_floor_ms": min(timed) if timed else None}


def _time_alone(model: ModelT, operator: OperatorT, runs: int) -> tuple[float, bool]:
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_litert.tools import flatbuffer_utils

    single = copy.copy(model)
    graph = copy.copy(model.subgraphs[0])
    graph.operators = [operator]
    graph.inputs = [t for t in operator.inputs if t >= 0 and not _is_constant(model, graph.tensors[t])]
    graph.outputs = list(operator.outputs)
    single.subgraphs = [graph, *model.subgraphs[1:]]
    single.signatureDefs = []
    interpreter = Interpreter(model_content=bytes(flatbuffer_utils.convert_object_to_bytearray(single)), num_threads=1)
    interpreter.allocate_tensors()
    generator = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        dtype = np.dtype(detail["dtype"])
        shape = detail["shape"]
        value = (generator.integers(-16, 16, shape) if dtype.kind in "iu" else generator.standard_normal(shape))
        interpreter.set_tensor(detail["index"], value.astype(dtype))
    delegated = any(op["op_name"] == "DELEGATE" for op in interpreter._get_ops_details())
    for _ in range(3):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3), delegated


def _is_constant(model: ModelT, tensor: TensorT) -> bool:
    """Constant tensors hold data in the flatbuffer (inline, or at an offset: `size` in newer schemas)."""
    buffer = model.buffers[tensor.buffer] if tensor.buffer < len(model.buffers) else None
    if buffer is None:
        return False
    if buffer.data is not None and len(buffer.data) > 0:
        return True
    try:
        return bool(buffer.size)
    except AttributeError:   # a schema from before buffers could live outside the flatbuffer
        return False


def layer_name(tensor_name: bytes | str) -> str | None:
    """The converters name an op's output after the source layers it came from ('a/b/Conv2d_2;...'); keep the
    most specific layer path, without the module prefixes."""
    text = tensor_name.decode(errors="replace") if isinstance(tensor_name, bytes) else tensor_name
    parts = [p for p in text.split(";") if p]
    if not parts:
        return None
    chosen = next((p for p in reversed(parts) if "/" in p), parts[0])
    return "/".join(segment.rsplit(".", 1)[-1] for segment in chosen.split("/")[-2:])
