"""Per-node figures of a `.tflite` graph for Model Explorer's overlays: what each op computes in, and how far
each op's output in a quantized model is from the same tensor of the float model.

Node ids are operator indices of the main subgraph, as Model Explorer's flatbuffer adapter numbers them. Both
models run in the LiteRT interpreter with every intermediate tensor kept; tensors pair by name (the converters
name an op's output after its source layers, the same in the float and the quantized conversion).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_pipeline.numbers import SignalNoise

if TYPE_CHECKING:
    from ai_edge_litert.interpreter import Interpreter

    from .litert_session import LitertSession

CONVERTERS = ("QUANTIZE", "DEQUANTIZE")
QUANTIZED = {np.dtype(np.int8): "int8", np.dtype(np.uint8): "uint8", np.dtype(np.int16): "int16"}


def node_precisions(path: Path) -> dict[str, str]:
    """'int8' (or uint8, int16) where the op's activations are integers, 'int8 weights' for a float op reading
    int8 constants (dynamic range), 'convert' for (de)quantizers, else the activations' float type."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    dtypes = {t["index"]: np.dtype(t["dtype"]) for t in interpreter.get_tensor_details()}
    ops = _ops(path)
    activations = {i for op in ops for i in op["outputs"]} | {d["index"] for d in interpreter.get_input_details()}
    found: dict[str, str] = {}
    for op in ops:
        if op["op_name"] in CONVERTERS:
            found[str(op["index"])] = "convert"
            continue
        flowing = [dtypes[i] for i in op["inputs"] if i in activations] or [dtypes[i] for i in op["outputs"]]
        constants = [dtypes[i] for i in op["inputs"] if i >= 0 and i not in activations]
        kind = flowing[0] if flowing else np.dtype(np.float32)
        if kind in QUANTIZED:
            found[str(op["index"])] = QUANTIZED[kind]
        elif kind.kind == "f" and any(c in QUANTIZED for c in constants):
            found[str(op["index"])] = "int8 weights"
        else:
            found[str(op["index"])] = kind.name
    return found


def node_errors(path: Path, reference: Path, calls: list[list[np.ndarray]]) -> dict[str, float]:
    """SQNR (dB) of each op's output (dequantized) against the float model's tensor of the same name."""
    from .litert_session import dequantize

    quantized, q_session = _open_keeping_tensors(path)
    floating, f_session = _open_keeping_tensors(reference)
    q_tensors = {t["index"]: t for t in quantized.get_tensor_details()}
    f_by_name = {t["name"]: t for t in floating.get_tensor_details()}
    pairs: dict[str, tuple[int, int]] = {}
    for op in _ops(path):
        if op["op_name"] in CONVERTERS or not op["outputs"]:
            continue
        mine = q_tensors[op["outputs"][0]]
        theirs = f_by_name.get(mine["name"])
        if theirs is not None and tuple(theirs["shape"]) == tuple(mine["shape"]):
            pairs[str(op["index"])] = (mine["index"], theirs["index"])
    totals = {node: SignalNoise() for node in pairs}
    for call in calls:
        q_session.run(call)
        f_session.run(call)
        for node, (mine_index, their_index) in pairs.items():
            got = dequantize(quantized.get_tensor(mine_index), q_tensors[mine_index])   # type: ignore[arg-type]
            totals[node].add(floating.get_tensor(their_index), got)
    return {node: db for node, total in totals.items() if (db := total.sqnr_db()) is not None}


def _ops(path: Path) -> list[dict[str, object]]:
    """The main subgraph's operators in file order (read before a delegate adds its own nodes to the plan)."""
    from ai_edge_litert.interpreter import Interpreter

    return list(Interpreter(model_path=str(path))._get_ops_details())   # the only per-op listing Python has


def _open_keeping_tensors(path: Path) -> tuple[Interpreter, LitertSession]:
    """Optimized kernels without the XNNPACK delegate, whose fused partitions keep no intermediate tensor."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from .litert_session import LitertSession

    interpreter = Interpreter(model_path=str(path), num_threads=1, experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    return interpreter, LitertSession(interpreter)
