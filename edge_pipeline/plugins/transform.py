"""Transforms: a model transform rewrites the live model (PT2E quantization, a converter setting), an artifact
transform rewrites a written file (ORT quantization, ai-edge-quantizer recipes), a bridge carries a model into
another framework, a pruner prunes once in the source stage. Each is its own base class: the core dispatches on
the class, never on a flag."""
from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from edge_pipeline.plugins.contract import Plugin
from edge_pipeline.plugins.model import DataBundle, Model, QuantizeSettings
from edge_pipeline.plugins.recipe import Carrier, RecipeStep, Ship, StepKind, Work, file_step, model_step
from edge_pipeline.types import JsonObject


class Transform(Plugin):
    """What every transform declares. `accuracy_budget`: it can keep sensitive layers float (or at a higher
    precision) to meet the target's max-accuracy-drop, so the budget left for it is part of its settings (and of
    the cache key)."""

    kind: ClassVar[str] = "transform"
    frameworks: ClassVar[tuple[str, ...]]
    needs_calibration: ClassVar[bool] = False
    distributions: ClassVar[tuple[str, ...]] = ()
    accuracy_budget: ClassVar[bool] = False
    calibration_methods: ClassVar[tuple[str, ...]] = ("minmax",)   # the first is its default
    algorithms: ClassVar[tuple[str, ...]] = ()           # post-training algorithms it can run (bias correction, ...)
    default_algorithms: ClassVar[tuple[str, ...]] = ()   # those it runs when `[quantization] algorithms` is unset
    group_sizes: ClassVar[tuple[int, ...]] = ()          # grouped weights: the group sizes it offers, its default first
    step_kind: ClassVar[StepKind] = StepKind.QUANTIZE

    @classmethod
    def declaration_problems(cls) -> list[str]:
        problems = ["'frameworks' is empty"] if not cls.frameworks else []
        unknown = [a for a in cls.default_algorithms if a not in cls.algorithms]
        problems += [f"'default_algorithms' names {', '.join(unknown)}, not in 'algorithms'"] if unknown else []
        return problems + (["'calibration_methods' is empty"] if not cls.calibration_methods else [])

    @abstractmethod
    def recipe_step(self) -> RecipeStep:
        """This transform as a step of an export recipe."""


class ModelTransform(Transform):
    @abstractmethod
    def apply(self, model: Model, data: DataBundle, settings: QuantizeSettings) -> Model:
        """The rewritten model; notes for the report go into `provenance["quantization"]`."""

    def apply_shipped(self, model: Model, data: DataBundle, settings: QuantizeSettings, ship: Ship | None) -> Model:
        """`apply` for a transform that measures its candidates as the artifact that ships: `ship(candidate)`
        builds the candidate's artifact and runs it in its own runtime (None where no runtime is here). A
        candidate returned as it was shipped becomes the artifact as it was measured. Default: `apply`."""
        return self.apply(model, data, settings)

    def recipe_step(self) -> RecipeStep:
        def action(work: Work, _: Path) -> None:
            work.model = self.apply_shipped(work.model, work.data, work.settings, work.ship)
        return RecipeStep(self.step_kind, self.name, Carrier.MODEL, Carrier.MODEL, action, self.distributions)


class ArtifactTransform(Transform):
    @abstractmethod
    def apply_artifact(self, src: Path, dest: Path, data: DataBundle, settings: QuantizeSettings) -> JsonObject:
        """Writes the transformed file to `dest`; returns the quantization notes (its `op_coverage` entries, when
        present, describe the final file and replace the float file's)."""

    def recipe_step(self) -> RecipeStep:
        def rewrite(src: Path, dest: Path, work: Work) -> JsonObject:
            notes = dict(self.apply_artifact(src, dest, work.data, work.settings))
            coverage = notes.pop("op_coverage", None)
            found: JsonObject = {"quantization": notes}
            if isinstance(coverage, list):
                before = work.metadata.get("op_coverage")
                kept = [c for c in before if isinstance(c, dict) and c.get("stage") == "before"] \
                    if isinstance(before, list) else []
                found["op_coverage"] = [*kept, *coverage]
            return found
        return file_step(self.step_kind, self.name, rewrite, self.distributions, suffix=".quantized")


class Bridge(ModelTransform):
    """Carries a model from one framework into another (torch -> TensorFlow, Keras -> torch through ONNX)."""

    source_framework: ClassVar[str]
    target_framework: ClassVar[str]
    step_kind: ClassVar[StepKind] = StepKind.BRIDGE

    @classmethod
    def declaration_problems(cls) -> list[str]:
        problems = super().declaration_problems()
        if cls.source_framework not in cls.frameworks:
            problems.append(f"'source_framework' {cls.source_framework!r} is not in its frameworks")
        return problems


FineTune = Callable[[object], object]   # (framework module) -> fine-tuned module


class Pruner(ModelTransform):
    """Prunes once, in the source stage; the export workers rebuild the pruned model from what `save` wrote.
    `prune_kind` is the `[prune] kind` a user writes."""

    prune_kind: ClassVar[str]
    scopes: ClassVar[tuple[str, ...]] = ("global",)   # `[prune] scope` values it takes; the first is the default
    step_kind: ClassVar[StepKind] = StepKind.TRANSFORM

    def __init__(self, amount: float = 0.5, fine_tune: FineTune | None = None, scope: str = "global"):
        self.amount, self.fine_tune, self.scope = amount, fine_tune, scope

    @abstractmethod
    def save(self, model: Model, folder: Path) -> None:
        """Writes the pruned model so that `restore` rebuilds it in another process."""

    @abstractmethod
    def restore(self, model: Model, folder: Path) -> Model:
        """The pruned model `save` wrote, given the freshly loaded source model."""

