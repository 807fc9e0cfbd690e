"""The typed records the build's stages hand each other, across worker processes through one codec
(`edge_pipeline.codec`): the source record, an export job and its result, a measure job and its measurement,
an artifact's status and its error (the report's own `Status` and `StageError`). Nothing between stages is a
dict of strings."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from edge_pipeline.plugins.model import QuantizeSettings
from edge_pipeline.precision import Thresholds
from edge_pipeline.report.model import GenerationReport, Latency, RouteStep, ServerLoad, StageError, Status, Validation
from edge_pipeline.tensors import TensorSpec
from edge_pipeline.types import JsonObject, JsonValue, OutputSpec, ProfileSettings, SourceSpec

__all__ = ["ArtifactResult", "Exported", "ExportJob", "ExportResult", "MeasureJob", "Measurement", "ProfileJob",
           "PruningRecord", "RouteStep", "STAGES", "SourceJob", "SourceOutcome", "SourceRecord", "StageError", "Stamp",
           "STATE_DIR", "Status"]


@dataclass(frozen=True)
class PruningRecord:
    """What pruning did: `summary` as the report shows it (the pruner's own keys), the pruned model's accuracy
    (the part of the accuracy budget pruning spent)."""

    summary: JsonObject
    accuracy_after: float | None
    kind: str


@dataclass(frozen=True)
class SourceRecord:
    """The source stage's result: the model's identity and measures, and its data's fingerprints."""

    framework: str
    fingerprint: str
    data_hash: str
    reference_hash: str
    params: int
    size_bytes: int
    accuracy: float | None           # the trained model's: every accuracy drop is measured from it
    metric: str
    metric_output: str | None
    pruning: PruningRecord | None
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    eval_samples: int
    calibration_samples: int
    provenance: JsonObject
    layout: str                      # the source's image layout, as its Source plugin declares it
    cached: bool = False
    task: str = "tensor"             # types.TASKS: decides the outputs built, the validation and the measures

    def report_json(self) -> JsonObject:
        """The report's `source` section (its key order is the report's)."""
        return {"framework": self.framework, "params": self.params, "size_bytes": self.size_bytes,
                "accuracy": self.accuracy, "fingerprint": self.fingerprint, "input_shape": list(self.input_shape),
                "output_shape": list(self.output_shape), "inputs": [s.to_dict() for s in self.inputs],
                "outputs": [s.to_dict() for s in self.outputs], "metric": self.metric,
                "metric_output": self.metric_output, "eval_samples": self.eval_samples,
                "calibration_samples": self.calibration_samples, "provenance": self.provenance,
                "pruning": self.pruning.summary if self.pruning else None, "layout": self.layout,
                "cached": self.cached, "task": self.task}


@dataclass(frozen=True)
class Stamp:
    """A file the source stage read: an unchanged size and modification time means an unchanged file."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str) -> "Stamp | None":
        try:
            info = os.stat(path)
        except OSError:
            return None
        return cls(path, info.st_size, info.st_mtime_ns)


@dataclass(frozen=True)
class SourceJob:
    spec: SourceSpec
    workdir: Path


@dataclass(frozen=True)
class SourceOutcome:
    record: SourceRecord
    read: tuple[Stamp, ...]           # what it read: an unchanged rebuild skips the source stage


STATE_DIR = "state"   # in a source's cache folder: a factory's weights, as the source stage validated them


@dataclass(frozen=True)
class ExportJob:
    spec: SourceSpec
    label: str
    exporter: str
    transform: str | None
    bridge: str | None
    data: Path
    dest: Path
    pruned: Path | None               # where the source stage saved the pruned model (None: not pruned)
    prune_kind: str | None
    settings: QuantizeSettings
    state: Path | None = None         # where it saved a factory's weights (None: the model is read from a file)
    runner: str | None = None         # the artifact's runtime here: a searching step measures candidates in it
    output_names: tuple[str, ...] = ()   # the source's outputs, as its reference names them


@dataclass(frozen=True)
class ExportResult:
    metadata: JsonObject              # the converter's own notes (coverage, quantization, fallback)
    seconds: float
    route: tuple[RouteStep, ...]


@dataclass(frozen=True)
class Exported:
    """An export as the cache keeps it: the result and the file's identity."""

    result: ExportResult
    file: str
    sha256: str
    size_bytes: int
    size_compressed_bytes: int


@dataclass(frozen=True)
class MeasureJob:
    runner: str
    artifact: Path
    target: str
    data: Path
    reference: Path
    thresholds: Thresholds
    profile: ProfileSettings
    device: str | None
    spec: SourceSpec
    task: str = "tensor"


@dataclass(frozen=True)
class ProfileJob:
    artifact: Path
    runner: str
    target: str
    inputs: Path | None
    profile: ProfileSettings
    device: str | None
    reference: Path | None = None
    reference_runner: str | None = None


@dataclass(frozen=True)
class Measurement:
    """An artifact run in its own runtime: validation against the source, latency, memory, op profile. The
    `inputs`/`outputs` are set by `edgepipe profile`, which has no source to take them from."""

    runtime: str
    runtime_version: str | None
    validation: Validation | None = None
    accuracy: float | None = None
    sample_outputs: JsonValue = None
    signature: JsonObject | None = None
    latency: tuple[Latency, ...] = ()
    peak_rss_mb: float | None = None
    runtime_memory_mb: float | None = None
    op_profile: JsonObject | None = None
    node_latency_ms: dict[str, float] = field(default_factory=dict)   # graph node id -> ms: the graph overlay's
    inputs: tuple[TensorSpec, ...] | None = None
    outputs: tuple[TensorSpec, ...] | None = None
    generation: GenerationReport | None = None      # a language model's token-level figures and speed
    server_load: ServerLoad | None = None           # a served artifact's load test

    @property
    def passed(self) -> bool:
        return self.validation is None or self.validation.passed is True


@dataclass
class ArtifactResult:
    """Everything known about one built artifact as the stages fill it in."""

    output: OutputSpec
    status: Status = Status.PENDING
    path: Path | None = None
    exported: Exported | None = None
    measurement: Measurement | None = None
    error: StageError | None = None
    cached: dict[str, bool] = field(default_factory=dict)
    unvalidated_reason: str | None = None
    exporter: str | None = None
    transform: str | None = None
    bridge: str | None = None


# stage name -> (its job record, its result record): what a worker decodes and encodes
STAGES: dict[str, tuple[type, type]] = {"source": (SourceJob, SourceOutcome), "export": (ExportJob, ExportResult),
                                        "measure": (MeasureJob, Measurement), "profile": (ProfileJob, Measurement)}
