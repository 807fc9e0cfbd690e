"""Quantization of a finished `.tflite` with ai-edge-quantizer recipes (LiteRT's own post-training quantizer),
for models from any source framework: weight-only int8 (int8 weights dequantized in the graph, float compute),
dynamic int8 (int8 weights, activations quantized at run time) and static 16x8 (int8 weights, int16
activations and input/output, calibrated: for models whose activations int8 cannot hold)."""
from __future__ import annotations

from abc import abstractmethod
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from edge_pipeline.errors import StageFailed
from edge_pipeline.plugins import ArtifactTransform, DataBundle, QuantizeSettings
from edge_pipeline.tensors import order_inputs
from edge_pipeline.types import JsonObject
from targets.coverage import tflite_after

if TYPE_CHECKING:
    from ai_edge_quantizer import qtyping, quantizer


class LitertRecipe(ArtifactTransform):
    recipe: ClassVar[str]    # the ai-edge-quantizer recipe's name, as the report names it
    scheme: ClassVar[str]
    frameworks: ClassVar[tuple[str, ...]] = ("torch", "tensorflow")
    needs_calibration: ClassVar[bool] = False
    distributions: ClassVar[tuple[str, ...]] = ("ai-edge-quantizer",)

    @abstractmethod
    def steps(self) -> list[JsonObject]:
        """The recipe itself (ai-edge-quantizer's function of that name)."""

    def tool_text(self) -> str:
        return f"ai-edge-quantizer {version('ai-edge-quantizer')} recipe {self.recipe}"

    def apply_artifact(self, src: Path, dest: Path, data: DataBundle, settings: QuantizeSettings) -> JsonObject:
        ranges = calibrated_ranges(src, self.steps(), data) if self.needs_calibration else None
        dest.write_bytes(quantized_bytes(src, self.steps(), ranges, self.recipe))
        static: JsonObject = ({"calibration_samples": int(len(data.calibration)), "float_ops": float_ops(dest)}
                              if self.needs_calibration else {})
        return {"scheme": self.scheme, "tool": self.tool_text(), **static, "op_coverage": [tflite_after(dest)]}


def quantized_bytes(src: Path, steps: list[JsonObject], ranges: dict[str, qtyping.QSV] | None, recipe: str) -> bytes:
    """The float `.tflite` quantized by `steps` with calibrated `ranges` (None: a recipe that needs none)."""
    try:
        return bytes(_engine(src, steps).quantize(ranges).quantized_model)
    except Exception as exc:
        raise StageFailed(f"ai-edge-quantizer recipe {recipe} failed: {type(exc).__name__}: {exc}") from exc


def calibrated_ranges(src: Path, steps: list[JsonObject], data: DataBundle) -> dict[str, qtyping.QSV]:
    """Global min-max ranges of what `steps` quantize. `Quantizer.calibrate` smooths ranges with a moving average
    (factor 0.95), which keeps roughly the last 20 samples' extremes: measured here, it clipped the digits logits
    at 9.3 of 15.9."""
    from ai_edge_quantizer import calibrator
    from ai_edge_quantizer.utils import qsv_utils

    try:
        calib = calibrator.Calibrator(str(src), num_threads=1, qsv_update_func=qsv_utils.min_max_update)
        # the recipe decides what is observed
        calib.calibrate(_calibration_set(src, data), _engine(src, steps)._recipe_manager)
        return calib.get_model_qsvs()
    except Exception as exc:
        raise StageFailed(f"ai-edge-quantizer calibration failed: {type(exc).__name__}: {exc}") from exc


def _engine(src: Path, steps: list[JsonObject]) -> quantizer.Quantizer:
    from ai_edge_quantizer import quantizer

    engine = quantizer.Quantizer(str(src))
    engine.load_quantization_recipe(steps)
    return engine


def _calibration_set(src: Path, data: DataBundle) -> dict[str, list[dict[str, np.ndarray]]]:
    """Calibration batches keyed by the model's signature and input name, in the artifact's batch size."""
    from ai_edge_litert.interpreter import Interpreter

    from targets.runners.litert_session import LitertSession

    interpreter = Interpreter(model_path=str(src))
    key = next(iter(interpreter.get_signature_list()))
    specs = LitertSession(interpreter).input_specs
    ordered = order_inputs(specs, data.calibration)
    return {key: [{s.name: a.astype(s.dtype) for s, a in zip(specs, part.arrays)}
                  for part in ordered.batches(data.batch)]}


class LitertWeightOnlyInt8(LitertRecipe):
    name, recipe = "litert-weight-int8", "weight_only_wi8_afp32"
    scheme = "weight-only int8 (per-channel int8 weights, DEQUANTIZE ops feed float kernels)"

    def steps(self) -> list[JsonObject]:
        from ai_edge_quantizer import recipe

        return recipe.weight_only_wi8_afp32()


class LitertDynamicInt8(LitertRecipe):
    name, recipe = "litert-dynamic-int8", "dynamic_wi8_afp32"
    scheme = "dynamic int8 (per-channel int8 weights, activations quantized at run time)"

    def steps(self) -> list[JsonObject]:
        from ai_edge_quantizer import recipe

        return recipe.dynamic_wi8_afp32()


class LitertStatic16x8(LitertRecipe):
    name, recipe = "litert-16x8", "static_wi8_ai16"
    scheme = "static 16x8 (per-channel int8 weights, int16 activations and input/output, calibrated)"
    needs_calibration = True

    def steps(self) -> list[JsonObject]:
        from ai_edge_quantizer import recipe

        return recipe.static_wi8_ai16()


def float_ops(path: Path) -> dict[str, int]:
    """Ops of a statically quantized file that compute in float (their output is float and they are not a
    DEQUANTIZE): where the recipe found no integer kernel, e.g. hard-swish in 16x8."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    dtypes = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}
    found: dict[str, int] = {}
    for op in interpreter._get_ops_details():
        if op["op_name"] != "DEQUANTIZE" and any(dtypes[o] == np.float32 for o in op["outputs"] if o >= 0):
            found[op["op_name"]] = found.get(op["op_name"], 0) + 1
    return dict(sorted(found.items()))
