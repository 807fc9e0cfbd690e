"""Sources recognise and safely load a trained model: by file suffix, by folder layout, or by the type of
what a user's factory returned. A source also knows its framework's measures of a model (weights fingerprint,
parameter count, size, eager reference outputs), which the source stage records before anything is exported."""
from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

from edge_pipeline.errors import InputError
from edge_pipeline.plugins.contract import Plugin
from edge_pipeline.plugins.model import DataBundle, Model
from edge_pipeline.tensors import Tensors, collect_outputs
from edge_pipeline.types import JsonObject, SourceSpec

BatchCall = Callable[[Tensors], Sequence[tuple[str, object]]]


class Source(Plugin):
    """`suffixes`: model files it loads; `layouts`: a file whose presence in a folder makes that folder its model
    (e.g. `saved_model.pb`); `factory_packages`: top-level packages of the classes a factory's result may come
    from (`torch` for an nn.Module). A source may declare any of the three."""

    kind: ClassVar[str] = "source"
    framework: ClassVar[str]
    layout: ClassVar[str] = "NHWC"        # how its image inputs are laid out (a demo app feeds samples so)
    suffixes: ClassVar[tuple[str, ...]] = ()
    layouts: ClassVar[tuple[str, ...]] = ()
    factory_packages: ClassVar[tuple[str, ...]] = ()

    def recognises_file(self, path: Path) -> bool:
        if path.is_dir():
            return any((path / marker).exists() for marker in self.layouts)
        return path.name.lower().endswith(tuple(s.lower() for s in self.suffixes)) if self.suffixes else False

    def recognises_object(self, obj: object) -> bool:
        return bool({cls.__module__.split(".")[0] for cls in type(obj).__mro__} & set(self.factory_packages))

    def load_file(self, spec: SourceSpec, path: Path) -> tuple[Model, Tensors]:
        """The model in the file (or folder) `path`, loaded without running code it carries, and its example
        inputs."""
        raise InputError(f"the {self.name} source does not load files ({path.name})")

    def from_object(self, obj: object, spec: SourceSpec, provenance: JsonObject) -> tuple[Model, Tensors]:
        """The model a user's factory returned, and its example inputs."""
        raise InputError(f"the {self.name} source does not take factory results ({type(obj).__name__})")

    def save_state(self, model: Model, folder: Path) -> None:
        """Writes the weights of a model a factory built, so that every export worker rebuilds exactly the model
        the source stage validated (a factory without a seed builds a new random model on each call)."""
        raise InputError(f"the {self.name} source cannot save the state of a factory's model")

    def restore_state(self, model: Model, folder: Path) -> Model:
        """`model` (the factory's structure, built again) with the weights `save_state` wrote; a model whose
        structure no longer fits them is an InputError."""
        raise InputError(f"the {self.name} source cannot restore the state of a factory's model")

    @abstractmethod
    def fingerprint(self, model: Model) -> str:
        """A hash of everything that decides the model's outputs (weights, structure)."""

    @abstractmethod
    def count_params(self, model: Model) -> int: ...

    @abstractmethod
    def weights_bytes(self, model: Model) -> int: ...

    @abstractmethod
    def batch_call(self, model: Model) -> BatchCall:
        """One call of the model in its framework: a batch of inputs in, (name, tensor) pairs out."""

    def reference_outputs(self, model: Model, data: DataBundle) -> Tensors:
        """The source's own outputs on the evaluation inputs: what every artifact is judged against."""
        return collect_outputs(self.batch_call(model), data.eval_inputs, data.batch)
