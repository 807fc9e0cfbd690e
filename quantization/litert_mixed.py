"""Mixed precision inside one `.tflite`: int8 weights and activations, with int16 activations (LiteRT's 16x8
kernels) for the tensors an accuracy budget needs, and float only where int16 everywhere is not enough.
ai-edge-quantizer's recipes take a setting per op (matched on the op's output tensor names); it inserts the
requantizations between int8, int16 and float ops.

Regions are activation tensors: promoting one runs the op that writes it and every op that reads it in 16x8, so
the tensor is never held in int8 (an int16 producer with int8 consumers is requantized to int8 again). Ranking:
each tensor of the float model, fake-quantized with the scale and zero point the int8 model gives it, against
itself (per-channel SQNR, one float run with every tensor kept): what int8 costs that tensor alone, which is what
int16 would take back (weights stay int8 either way). The ranking is a ladder: every region's int16 rung, most
sensitive first, then every region's float rung in the same order. The budget search is the shared one
(sensitivity.py): k = 1, 2, 4, ... rungs until the budget holds, then bisection; every candidate is the very file
that would ship, run in LiteRT on the evaluation data. One calibration serves every candidate.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_pipeline.plugins import DataBundle, QuantizeSettings
from edge_pipeline.tensors import Tensors, order_inputs
from edge_pipeline.types import JsonObject
from targets.coverage import tflite_after

from .litert_recipes import LitertRecipe, calibrated_ranges, float_ops, quantized_bytes
from .sensitivity import EVAL_SAMPLES, Budgeted, LayerErrors, LayerRow, Predict, for_batches, method_text
from .tflite_int8_debug import litert_predict

WHAT = ("per-channel SQNR of each activation tensor of the float model fake-quantized with the int8 model's scale "
        "(what int8 costs that tensor alone; int16 takes it back)")
NUMERICS = "LiteRT interpreter on the float .tflite, every tensor kept; scales from the int8 model"
FLOAT = " (float)"               # a region's second rung, after int16
INT16_GAIN_DB = 48.16            # the same tensor on a grid 256 times finer: its second rung is ranked by this


class LitertMixedInt8(Budgeted, LitertRecipe):
    name, recipe = "litert-mixed", "static_wi8_ai8, static_wi8_ai16 per region"
    scheme = ("int8 weights and activations, int16 activations (16x8) for the regions an accuracy budget needs "
              "(an op without a 16x8 kernel there stays float, as in the whole-model 16x8 recipe), then float regions "
              "if int16 everywhere misses it")
    needs_calibration = True
    keeps_as = "int16"

    def steps(self) -> list[JsonObject]:
        from ai_edge_quantizer import recipe

        return recipe.static_wi8_ai8()

    def int16_steps(self, tensors: frozenset[str], regions: dict[str, Region]) -> list[JsonObject]:
        """Every op that writes or reads one of `tensors` in 16x8; one LiteRT has no 16x8 kernel for stays float,
        as in the whole-model 16x8 recipe. (A scope is an op's outputs, each followed by ';'. Of the settings
        that match an op, ai-edge-quantizer takes the last one its op supports; the two regexes differ only in
        text, as one regex holds one setting per op type.)"""
        from ai_edge_quantizer import recipe

        pattern = _pattern(tensors, regions)
        return [{"regex": pattern, "operation": "*", "algorithm_key": "no_quantize"},
                {**recipe.static_wi8_ai16()[0], "regex": f"(?:{pattern})"}]

    def ladder_steps(self, kept: frozenset[str], regions: dict[str, Region]) -> list[JsonObject]:
        """`kept` names regions on the ladder's first rung (int16) or, with FLOAT after the name, its second
        (float: every op of the region unquantized, set last so that it wins)."""
        floats = frozenset(k.removesuffix(FLOAT) for k in kept if k.endswith(FLOAT))
        steps = self.int16_steps(frozenset(k.removesuffix(FLOAT) for k in kept), regions) if kept else []
        return steps + ([{"regex": f"(?:(?:{_pattern(floats, regions)}))", "operation": "*",
                          "algorithm_key": "no_quantize"}] if floats else [])

    def apply_artifact(self, src: Path, dest: Path, data: DataBundle, settings: QuantizeSettings) -> JsonObject:
        ranges = calibrated_ranges(src, self.steps(), data)
        regions = regions_of(src)

        def quantize(skip: frozenset[str] = frozenset()) -> tuple[bytes, Predict]:
            steps = self.steps() + self.ladder_steps(skip, regions)
            model = quantized_bytes(src, steps, ranges, self.recipe)
            return model, litert_predict(model, data.batch)

        def rank(model: bytes) -> tuple[list[LayerRow], int]:
            rows = _int8_cost(src, model, regions, data.eval_inputs[:EVAL_SAMPLES], data.batch)
            return rows + [LayerRow(layer=row["layer"] + FLOAT, sqnr_db=round(row["sqnr_db"] + INT16_GAIN_DB, 2))
                           for row in rows], 0

        reference = litert_predict(src.read_bytes(), data.batch)
        chosen, notes = self.fall_back(quantize, rank, reference, data, settings, method_text(WHAT, NUMERICS))
        _split_rungs(notes.get("fallback"))
        dest.write_bytes(chosen)
        return {"scheme": self.scheme, "tool": self.tool_text(), "calibration_samples": int(len(data.calibration)),
                "regions": len(regions), "float_ops": float_ops(dest), **notes, "op_coverage": [tflite_after(dest)]}


def _pattern(tensors: frozenset[str], regions: dict[str, Region]) -> str:
    scopes = sorted({scope for t in tensors for scope in regions[t].scopes})
    return f"^(?:{'|'.join(re.escape(s) for s in scopes)})$"


def _split_rungs(fallback: object) -> None:
    """The search's kept names, rung by rung: `kept_int16` (first rung, or on to float) and `kept_float`."""
    if not isinstance(fallback, dict):
        return
    for entry in [fallback, *fallback.get("steps", [])]:
        kept = [str(k) for k in entry.get("kept_int16", [])]
        entry["kept_float"] = [k.removesuffix(FLOAT) for k in kept if k.endswith(FLOAT)]
        entry["kept_int16"] = [k for k in kept if not k.endswith(FLOAT) and k not in entry["kept_float"]]


@dataclass
class Region:
    """An activation tensor and the scopes of the ops that write and read it."""

    tensor: str
    scopes: set[str] = field(default_factory=set)


def regions_of(src: Path) -> dict[str, Region]:
    """Every float activation tensor (a graph input, or one an op writes), by a short unique name (its source
    layer, as the report shows it). The graph's inputs and outputs count: ai-edge-quantizer quantizes them with
    virtual INPUT and OUTPUT ops, whose scopes are the input and output names, so promoting every region gives
    exactly the whole-model 16x8 recipe."""
    from ai_edge_litert.interpreter import Interpreter

    from targets.runners.litert_op_profile import layer_name

    interpreter = Interpreter(model_path=str(src))
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()   # the only per-op listing the Python interpreter offers
    inputs = [d["index"] for d in interpreter.get_input_details()]
    outputs = [d["index"] for d in interpreter.get_output_details()]

    def scope(tensors: list[int]) -> str:
        return "".join(f"{details[t]['name']};" for t in tensors if t >= 0)

    touching: dict[int, set[str]] = {t: {scope(inputs)} for t in inputs}
    for op in ops:
        for out in op["outputs"]:
            touching.setdefault(out, set()).add(scope(list(op["outputs"])))
    for op in ops:
        for read in op["inputs"]:
            if read in touching:
                touching[read].add(scope(list(op["outputs"])))
    for out in outputs:
        touching.setdefault(out, set()).add(scope(outputs))
    found: dict[str, Region] = {}
    for tensor, scopes in touching.items():
        if tensor < 0 or details[tensor]["dtype"] != np.float32:
            continue
        name = str(details[tensor]["name"])
        short = layer_name(name) or name
        short = short if short not in found else f"{short}#{sum(k.startswith(short) for k in found)}"
        found[short] = Region(name, scopes)
    return found


def _int8_cost(src: Path, model: bytes, regions: dict[str, Region], inputs: Tensors, batch: int) -> list[LayerRow]:
    """Each region's tensor from the float model, fake-quantized on the int8 model's grid, against itself."""
    from ai_edge_litert.interpreter import Interpreter

    from targets.runners.litert_session import LitertSession

    grids = {t["name"]: t["quantization"] for t in Interpreter(model_content=model).get_tensor_details()
             if t["dtype"] == np.int8 and t["quantization"][0] > 0}
    points = {short: region.tensor for short, region in regions.items() if region.tensor in grids}
    interpreter = Interpreter(model_path=str(src), num_threads=1, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    session = LitertSession(interpreter)
    index = {t["name"]: t["index"] for t in interpreter.get_tensor_details()}
    errors = LayerErrors()

    def run(x: Tensors) -> None:
        session.run(list(order_inputs(session.input_specs, x).arrays))
        for short, name in points.items():
            value = interpreter.get_tensor(index[name])
            scale, zero = grids[name]
            faked = (np.clip(np.round(value / scale) + zero, -128, 127) - zero) * scale
            errors.add(short, value, faked, -1)

    for_batches(inputs, batch, run)
    return errors.rows({short: [short] for short in points})


