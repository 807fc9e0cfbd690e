"""What plugins hand each other inside a worker: the live Model, its data, and the typed settings that travel
with it. The core never looks inside a plugin's settings: it passes them through, and each consumer asks the
model for its own config class (torchao's typed-config dispatch)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from edge_pipeline.tensors import Tensors
from edge_pipeline.types import JsonObject

if TYPE_CHECKING:
    from typing import Self

C = TypeVar("C", bound="PluginConfig")


@dataclass(frozen=True)
class PluginConfig:
    """Base of a setting one plugin leaves for another (a converter mode, a backend quantization config). The
    plugin that reads it owns its class; a model holds at most one of each class."""


@dataclass(frozen=True)
class OwnData(PluginConfig):
    """Data a source derives from the model's own files instead of the user's functions: a language model's
    evaluation text, tokenized by its own tokenizer into windows."""

    data: "DataBundle"


@dataclass(frozen=True)
class QuantizeSettings:
    """The `[quantization]` settings and the target's accuracy budget, as every transform receives them."""

    calibration_method: str | None = None     # None: the transform's own default
    calibration_samples: int | None = None    # None: every calibration sample
    max_accuracy_drop: float | None = None    # the budget left for this step (None: rank only, keep nothing float)
    sensitivity: str = "on-failure"           # on-failure | always | never
    algorithms: tuple[str, ...] | None = None   # post-training algorithms before rounding (None: the transform's own)
    group_size: int | None = None             # weights per scale of grouped 4-bit weights (None: the transform's own)


@dataclass(frozen=True)
class Model:
    """A live source model inside a worker: framework, object, example inputs, provenance and plugin configs.
    `module` is the framework's own object (a torch.nn.Module, a Keras model, an ONNX path handle)."""

    framework: str
    module: Any
    example_inputs: tuple[Any, ...]
    provenance: JsonObject = field(default_factory=dict)
    input_names: tuple[str, ...] = ()     # in the order `module` takes them positionally
    output_names: tuple[str, ...] = ()    # the source's own output names (set for exporters; () where unknown)
    configs: tuple[PluginConfig, ...] = ()
    task: str | None = None               # types.TASKS; None: told by the data (labels: classification)

    def config(self, kind: type[C]) -> C | None:
        """The config of that class a transform left on this model, if any."""
        return next((c for c in self.configs if isinstance(c, kind)), None)

    def with_config(self, config: PluginConfig) -> "Self":
        """This model with `config` replacing any config of the same class."""
        kept = tuple(c for c in self.configs if type(c) is not type(config))
        return replace(self, configs=(*kept, config))

    def with_provenance(self, **entries: object) -> "Self":
        return replace(self, provenance={**self.provenance, **entries})


@dataclass(frozen=True)
class DataBundle:
    """Example, calibration and evaluation samples, one named array per model input (dtypes kept)."""

    example: Tensors
    calibration: Tensors
    eval_inputs: Tensors
    eval_labels: np.ndarray | None

    @classmethod
    def single(cls, name: str, example: np.ndarray, calibration: np.ndarray, eval_inputs: np.ndarray,
               eval_labels: np.ndarray | None) -> "DataBundle":
        """A single-input model's data (the built-in examples)."""
        def one(array: np.ndarray) -> Tensors:
            return Tensors((name,), (np.asarray(array, order="C"),))
        return cls(one(example), one(calibration), one(eval_inputs), eval_labels)

    @property
    def batch(self) -> int:
        """The artifact's fixed batch size: the example inputs' leading dimension."""
        return len(self.example)
