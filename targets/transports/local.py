"""The default transport: measure on this host, in the measuring process. A transport that also measures here
but names the place differently (a bench label, a container) subclasses it and overrides `device_label`."""
from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import ClassVar

import numpy as np

from edge_pipeline.errors import ConfigError
from edge_pipeline.plugins import DecoderSession, Runner, Session, Transport
from edge_pipeline.tensors import Tensors, TensorSpec
from edge_pipeline.types import JsonObject


class LocalTransport(Transport):
    """No `--device`: the artifact's runner as it is, its latency labelled with this host."""

    name: ClassVar[str] = "local"
    schemes: ClassVar[tuple[str, ...]] = ("local",)
    in_process: ClassVar[bool] = True

    def parse(self, url: str | None) -> str | None:
        if url is not None and url.rstrip(":/") not in self.schemes:
            raise ConfigError(f"--device '{url}': the {self.name} transport takes no address (use '{self.schemes[0]}')")
        return url

    def device_label(self, url: str | None) -> str | None:
        """What `measured_on` names instead of the host; None: the host and its pinned CPUs."""
        return None

    def wrap_runner(self, runner: Runner, url: str | None) -> Runner:
        label = self.device_label(url) if url is not None else None
        return runner if label is None else LabelledRunner.around(runner, label)


class LabelledRunner(Runner):
    """A host runner whose sessions report `label`: the same code, measured and labelled as that place. Build it
    with `around`, which declares the wrapped runner's members (name, runtime, ...) on a class of its own."""

    def __init__(self, runner: Runner, label: str):
        self.wrapped, self.label = runner, label

    @classmethod
    def around(cls, runner: Runner, label: str) -> LabelledRunner:
        return _labelled_class(type(runner))(runner, label)

    def open(self, path: Path, threads: int, variant: str | None = None) -> Session:
        session = self.wrapped.open(path, threads, variant)
        try:
            session.device_label = self.label
        except AttributeError:   # a session with read-only members: label a thin wrapper instead
            session = LabelledSession(session, self.label)
        return session

    def open_decoder(self, path: Path, threads: int) -> DecoderSession:
        """A language model on this host, labelled as the place it stands for."""
        session = self.wrapped.open_decoder(path, threads)
        session.device_label = self.label
        return session

    def preload(self) -> None:
        self.wrapped.preload()

    def signature(self, path: Path) -> JsonObject | None:
        return self.wrapped.signature(path)

    def op_profile(self, path: Path, sample: list[np.ndarray], runs: int) -> JsonObject | None:
        return self.wrapped.op_profile(path, sample, runs)

    def bundle_files(self) -> dict[str, Path]:
        return self.wrapped.bundle_files()


@cache
def _labelled_class(kind: type[Runner]) -> type[LabelledRunner]:
    """A LabelledRunner declaring `kind`'s members, so whoever reads the wrapper's reads the wrapped runner's."""
    class Labelled(LabelledRunner):
        name = kind.name
        runtime = kind.runtime
        distribution = kind.distribution
        variants = kind.variants
        suffixes = kind.suffixes
        in_process = kind.in_process

    Labelled.__name__ = Labelled.__qualname__ = f"Labelled{kind.__name__}"
    return Labelled


class LabelledSession(Session):
    """A session that reports `device_label` for one that cannot take it; everything else is the wrapped one's."""

    def __init__(self, session: Session, label: str):
        self.wrapped, self.device_label = session, label

    @property   # type: ignore[override]
    def input_specs(self) -> list[TensorSpec] | None:
        return self.wrapped.input_specs

    @property   # type: ignore[override]
    def output_names(self) -> list[str] | None:
        return self.wrapped.output_names

    @property   # type: ignore[override]
    def runtime_label(self) -> str | None:
        return self.wrapped.runtime_label

    @property   # type: ignore[override]
    def runtime_version(self) -> str | None:
        return self.wrapped.runtime_version

    @property   # type: ignore[override]
    def cores(self) -> int | None:
        return self.wrapped.cores

    @property   # type: ignore[override]
    def times_itself(self) -> bool:
        return self.wrapped.times_itself

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self.wrapped.run(inputs)

    def benchmark(self, inputs: list[np.ndarray], warmup: int, runs: int) -> np.ndarray:
        return self.wrapped.benchmark(inputs, warmup, runs)

    def run_batches(self, inputs: Tensors, batch: int) -> list[np.ndarray] | None:
        return self.wrapped.run_batches(inputs, batch)
