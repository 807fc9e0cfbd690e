"""Mixed precision inside one `.tflite`: int8, with int16 activations (LiteRT's 16x8 kernels) for the regions an
accuracy budget needs, and float regions only once int16 everywhere misses it. ai-edge-quantizer takes one
setting per op (a regex on the op's scope); edgepipe picks the ops. A region is an activation tensor with its
writer and every reader: an int16 tensor read by an int8 op would be requantized to int8 again."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_pipeline.plugins import DataBundle, QuantizeSettings
from edge_pipeline.tensors import Tensors, order_inputs
from edge_pipeline.types import JsonObject
from targets.coverage import tflite_after

from .litert_recipes import LitertRecipe, calibrated_ranges, float_ops, quantized_bytes
from .sensitivity import EVAL_SAMPLES, MAX_DB, Budgeted, LayerErrors, LayerRow, Predict, for_batches, method_text
from .tflite_int8_debug import every_tensor_kept, litert_predict

WHAT = ("per-channel SQNR of each activation tensor of the float model fake-quantized with the int8 model's scale "
        "(what int8 costs that tensor alone; int16 takes it back)")
NUMERICS = "LiteRT interpreter on the float .tflite, every tensor kept; scales from the int8 model"


class LitertMixedInt8(Budgeted, LitertRecipe):
    name, recipe = "litert-mixed", "static_wi8_ai8, static_wi8_ai16 per region"
    scheme = ("int8 weights and activations, int16 activations (16x8) for the regions an accuracy budget needs "
              "(an op without a 16x8 kernel there stays float, as in the whole-model 16x8 recipe), then float regions "
              "if int16 everywhere misses it")
    needs_calibration = True
    int16_rung = True

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

    def ladder_steps(self, promote: frozenset[str], skip: frozenset[str],
                     regions: dict[str, Region]) -> list[JsonObject]:
        """`promote` in 16x8, `skip` float (every op of those regions unquantized, set last so that it wins)."""
        steps = self.int16_steps(promote | skip, regions) if promote | skip else []
        return steps + ([{"regex": f"(?:(?:{_pattern(skip, regions)}))", "operation": "*",
                          "algorithm_key": "no_quantize"}] if skip else [])

    def apply_artifact(self, src: Path, dest: Path, data: DataBundle, settings: QuantizeSettings) -> JsonObject:
        regions = regions_of(src)
        ranges = calibrated_ranges(src, self.steps() + self.int16_steps(frozenset(regions), regions), data)

        def quantize(skip: frozenset[str] = frozenset(),
                     promote: frozenset[str] = frozenset()) -> tuple[bytes, Predict]:
            steps = self.steps() + self.ladder_steps(promote, skip, regions)
            model = quantized_bytes(src, steps, ranges, self.recipe)
            return model, litert_predict(model, data.batch)

        def rank(model: bytes) -> tuple[list[LayerRow], int]:
            return _int8_cost(src, model, regions, data.eval_inputs[:EVAL_SAMPLES], data.batch), 0

        reference = litert_predict(src.read_bytes(), data.batch)
        chosen, notes = self.fall_back(quantize, rank, reference, data, settings, method_text(WHAT, NUMERICS))
        dest.write_bytes(chosen)
        return {"scheme": self.scheme, "tool": self.tool_text(), "calibration_samples": int(len(data.calibration)),
                "regions": len(regions), "float_ops": float_ops(dest), **notes, "op_coverage": [tflite_after(dest)]}


def _pattern(tensors: frozenset[str], regions: dict[str, Region]) -> str:
    scopes = sorted({scope for t in tensors for scope in regions[t].scopes})
    return f"^(?:{'|'.join(re.escape(s) for s in scopes)})$"


@dataclass(frozen=True)
class Region:
    """An activation tensor and the scopes of the ops that write and read it."""

    tensor: str
    scopes: frozenset[str]


def regions_of(src: Path) -> dict[str, Region]:
    """Every float activation tensor (a graph input, or one an op writes), by a short unique name (its source
    layer, as the report shows it), with the scopes ai-edge-quantizer itself gives its writer and readers; the
    graph's input and output are read and written by its virtual INPUT and OUTPUT ops, so promoting every region
    is exactly the whole-model 16x8 recipe."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as flatbuffer

    from targets.runners.litert_op_profile import layer_name

    graph = flatbuffer.read_model(str(src)).subgraphs[0]
    ops = [*graph.operators, *flatbuffer.get_subgraph_input_output_operators(graph)]
    written: dict[int, set[str]] = {}
    for op in ops:
        for out in op.outputs:
            written.setdefault(int(out), set()).add(flatbuffer.get_op_scope(op, graph.tensors))
    for op in ops:
        for read in op.inputs:
            if int(read) in written:
                written[int(read)].add(flatbuffer.get_op_scope(op, graph.tensors))
    found: dict[str, Region] = {}
    seen: Counter[str] = Counter()
    for index, scopes in written.items():
        tensor = graph.tensors[index] if index >= 0 else None
        if tensor is None or tensor.type != flatbuffer.TENSOR_TYPE_TO_CODE["FLOAT32"]:
            continue
        name = flatbuffer.get_tensor_name(tensor)
        short = layer_name(name) or name
        seen[short] += 1
        found[short if seen[short] == 1 else f"{short}#{seen[short]}"] = Region(name, frozenset(scopes))
    return found


def _int8_cost(src: Path, model: bytes, regions: dict[str, Region], inputs: Tensors, batch: int) -> list[LayerRow]:
    """Each region's tensor from the float model, fake-quantized on the int8 model's grid, against itself; a
    region the int8 recipe left unquantized costs nothing and is ranked last (so every region has its rungs)."""
    from ai_edge_litert.interpreter import Interpreter

    grids = {t["name"]: t["quantization"] for t in Interpreter(model_content=model).get_tensor_details()
             if t["dtype"] == np.int8 and t["quantization"][0] > 0}
    points = {short: region.tensor for short, region in regions.items() if region.tensor in grids}
    interpreter, session, tensors = every_tensor_kept(src.read_bytes())
    index = {name: detail["index"] for name, detail in tensors.items()}
    errors = LayerErrors()

    def run(x: Tensors) -> None:
        session.run(list(order_inputs(session.input_specs, x).arrays))
        for short, name in points.items():
            value = interpreter.get_tensor(index[name])
            scale, zero = grids[name]
            faked = (np.clip(np.round(value / scale) + zero, -128, 127) - zero) * scale
            errors.add(short, value, faked, -1)

    for_batches(inputs, batch, run)
    return errors.rows({short: [short] for short in points}) + [LayerRow(layer=short, sqnr_db=MAX_DB)
                                                                for short in regions if short not in points]


