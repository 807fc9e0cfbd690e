"""The report as typed, frozen data. `to_json()` is exactly report.json; `from_json()` reads versions 2 and 3.

Why typed: the gate, the views and the API read a report's core (status, checks, sizes, latency, validation) by
attribute, so a renamed key is a type error, not a silent None. Open, free-form parts (converter metadata,
op profiles, config, host) stay mappings. Keys a typed part does not name are kept in `extra`, and a part read
from JSON remembers its key order, so a report read and written again is the same JSON.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import ClassVar, TypeVar

from edge_pipeline.errors import EdgepipeError
from edge_pipeline.numbers import FRACTION, POSITIVE, Range
from edge_pipeline.report.check import Check, CheckKind, TextEnum
from edge_pipeline.report.strict import JsonMap, ReportFieldError, conform, in_range, read_fields
from edge_pipeline.text import printable
from edge_pipeline.types import TASK_METRICS as BUILTIN_METRICS
from edge_pipeline.types import JsonObject, JsonValue

SCHEMA_VERSION = 3
READABLE_VERSIONS = (2, 3)
P = TypeVar("P", bound="Part")
NON_NEGATIVE = Range(0.0)
COUNT = Range(1.0)
COSINE = Range(-1.0, 1.0)
DROP_POINTS = Range(-100.0, 100.0)      # accuracy lost, in percentage points (negative: the artifact gained)


@dataclass(frozen=True, kw_only=True)
class Part:
    """Base of every typed part: the keys it does not type (`extra`) and, when read, its JSON key order.

    Reading is strict (strict.py): every typed field is checked against its type hint and its range in `RANGES`,
    a field in `REQUIRED` must be present, and keys the part does not type must still be finite JSON."""

    REQUIRED: ClassVar[tuple[str, ...]] = ()
    RANGES: ClassVar[Mapping[str, Range]] = {}
    OPTIONAL: ClassVar[tuple[str, ...]] = ()       # fields written only when set (absent keys in today's JSON)
    extra: JsonMap = field(default_factory=dict, repr=False)
    key_order: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def typed_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.name not in ("extra", "key_order"))

    @classmethod
    def from_json(cls: type[P], data: JsonMap, path: str = "") -> P:
        names = cls.typed_names()
        kwargs = read_fields(cls, data, path, names, cls.REQUIRED, cls.RANGES)
        extra = {k: conform(JsonValue, v, f"{path}.{k}" if path else k) for k, v in data.items() if k not in names}
        part = cls(**kwargs, extra=extra, key_order=tuple(data))
        part.check_read(path)
        return part

    def check_read(self, path: str) -> None:
        """What a part read from JSON must hold across its fields (a part overrides it); raises ReportFieldError."""

    def to_json(self) -> JsonObject:
        names = self.typed_names()
        values = vars(self)      # the dataclass's fields by name (generic: every part writes itself the same way)
        if self.key_order is not None:
            keys: Sequence[str] = self.key_order
        else:
            keys = [n for n in names if n not in self.OPTIONAL or values[n] is not None] + list(self.extra)
        return {k: _write_value(values[k]) if k in names else self.extra[k] for k in keys}


def _write_value(value: object) -> JsonValue:
    if isinstance(value, (Part, Check)):
        return value.to_json()
    if isinstance(value, Enum):
        return _write_value(value.value)
    if isinstance(value, tuple):
        return [_write_value(v) for v in value]
    return value


@dataclass(frozen=True, kw_only=True)
class Latency(Part):
    """One latency measurement (a thread count on one machine), in milliseconds."""

    RANGES = {**{k: POSITIVE for k in ("p50", "p90", "mean", "max", "p75", "repeat_p50")},   # a median of 0 is no time
              **{k: NON_NEGATIVE for k in ("min", "p10", "p25", "stdev", "iqr", "noise", "warmup")},   # timer ticks
              "runs": COUNT, "threads": COUNT}

    p50: float | None = None
    p90: float | None = None
    mean: float | None = None
    stdev: float | None = None
    min: float | None = None
    max: float | None = None
    p10: float | None = None
    p25: float | None = None
    p75: float | None = None
    iqr: float | None = None
    repeat_p50: Sequence[float] | None = None
    noise: float | None = None
    runs: int | None = None
    warmup: int | None = None
    threads: int | None = None
    backend: str | None = None
    measured_on: str | None = None

    @classmethod
    def from_measure(cls, entry: JsonMap) -> "Latency":
        """Only the report's keys of a runner's entry (all of them, None when it has none)."""
        return cls(**{name: entry.get(name) for name in cls.typed_names()})


@dataclass(frozen=True, kw_only=True)
class OutputValidation(Part):
    """Fidelity of one output against the float source, and its verdict."""

    RANGES = {"cosine": COSINE, "max_abs_diff": NON_NEGATIVE, "classes": COUNT,
              "agreement": FRACTION, "agreement_ci95": FRACTION, "top5_agreement": FRACTION}

    name: str | None = None
    shape: Sequence[int | str] | None = None
    dtype: str | None = None
    finite: bool | None = None
    sqnr_db: float | None = None
    cosine: float | None = None
    max_abs_diff: float | None = None
    classification: bool | None = None
    classes: int | None = None
    agreement: float | None = None
    agreement_ci95: Sequence[float] | None = None
    top5_agreement: float | None = None
    shape_mismatch: str | None = None
    decides: bool | None = None
    passed: bool | None = None


@dataclass(frozen=True, kw_only=True)
class StepFidelity(Part):
    """One output of a stateful model over its sequences: SQNR at each step, pooled over the sequences (None:
    identical to the source at that step), and how it moved from the first step to the last."""

    RANGES = {"worst_step": COUNT, "step_agreement": FRACTION, "worst_agreement": FRACTION}
    OPTIONAL = ("step_agreement", "worst_agreement")

    name: str | None = None
    state: bool | None = None               # the output is a state fed back to the next call
    step_sqnr_db: Sequence[float | None] = ()
    step_agreement: Sequence[float] | None = None   # class outputs ([N, C] per call): top-1 agreement per step
    worst_agreement: float | None = None
    first_sqnr_db: float | None = None
    last_sqnr_db: float | None = None
    worst_sqnr_db: float | None = None
    worst_step: int | None = None            # 1-based
    drift_db: float | None = None            # first minus last: positive when fidelity decays along the sequence


@dataclass(frozen=True, kw_only=True)
class SequenceValidation(Part):
    """A stateful model validated over whole sequences, each state output fed back as the next call's input."""

    RANGES = {"steps": COUNT, "sequences": COUNT, "chunk_duration_ms": POSITIVE, "real_time_factor": NON_NEGATIVE}
    OPTIONAL = ("chunk_duration_ms", "real_time_factor")

    steps: int | None = None
    sequences: int | None = None
    state: Sequence[str] = ()               # "output -> input"
    state_from: str | None = None           # "config" ([state]) or "names" (detected from names and shapes)
    initial_state: str | None = None
    outputs: tuple[StepFidelity, ...] = ()
    chunk_duration_ms: float | None = None  # the audio (or signal) one call consumes, when declared
    real_time_factor: float | None = None   # median time per call (1 thread) / chunk duration: < 1 keeps up


@dataclass(frozen=True, kw_only=True)
class Validation(Part):
    """An artifact's validation outcome: every output compared, and what decided."""

    RANGES = {"eval_samples": NON_NEGATIVE, "agreement": FRACTION, "max_abs_diff": NON_NEGATIVE}
    OPTIONAL = ("sequence",)

    passed: bool | None = None
    message: str | None = None
    outputs: tuple[OutputValidation, ...] = ()
    eval_samples: int | None = None
    thresholds: JsonMap | None = None
    warnings: Sequence[str] = ()
    metric: str | None = None
    metric_output: str | None = None
    source_metric: float | None = None
    accuracy: float | None = None
    accuracy_ci95: Sequence[float] | None = None
    metric_drop_pts: float | None = None
    decided_by: str | None = None
    agreement: float | None = None
    max_abs_diff: float | None = None
    min_sqnr_db: float | None = None
    sequence: SequenceValidation | None = None

    def check_read(self, path: str) -> None:
        if self.metric in (None, *BUILTIN_METRICS):
            in_range(path, {"accuracy": (self.accuracy, FRACTION), "source_metric": (self.source_metric, FRACTION),
                            "metric_drop_pts": (self.metric_drop_pts, DROP_POINTS)})


@dataclass(frozen=True, kw_only=True)
class GenerationReport(Part):
    """A language model artifact judged token by token against its source, and its speed (measure/generation).

    Agreement, KL and perplexity are teacher-forced over the evaluation windows; `first_divergence` is, per
    prompt, the first greedy token that differs from the source's (None: none of `new_tokens` did);
    `runtime_loop_matches`: the runtime's own generation loop produced the text stepping the artifact gives;
    `chat_template_matches`: the runtime rendered the shipped chat template as the source does (None: no template,
    or a runtime that renders none); `sample_continuation`: what the runtime's own loop generated for the first
    prompt (`sample_prompt_ids`) in `sample_new_tokens` tokens (a bundled app checks it reproduces it)."""

    RANGES = {"windows": COUNT, "positions": COUNT, "token_agreement": FRACTION, "mean_kl": NON_NEGATIVE,
              "perplexity": POSITIVE, "source_perplexity": POSITIVE, "prompts": COUNT, "prompt_tokens": COUNT,
              "new_tokens": COUNT, "prefill_tokens_per_s": POSITIVE, "decode_tokens_per_s": POSITIVE,
              "decode_tokens_per_s_stepping": POSITIVE, "ttft_ms": POSITIVE, "load_ms": POSITIVE,
              "decode_ms_per_token_noise": NON_NEGATIVE, "decode_tokens_timed": COUNT, "sample_new_tokens": COUNT}

    windows: int | None = None
    positions: int | None = None
    token_agreement: float | None = None
    mean_kl: float | None = None
    perplexity: float | None = None
    source_perplexity: float | None = None
    perplexity_increase_pct: float | None = None
    worst_logit_sqnr_db: float | None = None
    worst_position: int | None = None
    prompts: int | None = None
    prompt_tokens: int | None = None
    new_tokens: int | None = None
    first_divergence: Sequence[int | None] = ()
    runtime_loop: str | None = None
    runtime_loop_matches: bool | None = None
    chat_template_matches: bool | None = None
    sample_continuation: str | None = None
    sample_new_tokens: int | None = None
    sample_prompt_ids: Sequence[int] = ()
    load_ms: float | None = None
    ttft_ms: float | None = None
    ttft_ms_by_prompt_tokens: Mapping[str, float] | None = None
    prefill_tokens_per_s: float | None = None
    decode_tokens_per_s: float | None = None
    decode_tokens_per_s_by_threads: Mapping[str, float] | None = None
    decode_tokens_per_s_stepping: float | None = None
    decode_ms_per_token_noise: float | None = None
    decode_tokens_timed: int | None = None
    measured_on: str | None = None


class Status(TextEnum):
    """An artifact's state; `unvalidated`: kept and labelled, never bundled (no runtime here can run it)."""

    PENDING = "pending"
    OK = "ok"
    FAILED = "failed"
    UNVALIDATED = "unvalidated"


class ReportStatus(TextEnum):
    """A build's verdict: the exit code CI sees follows it (0, 4 and 1)."""

    PASSED = "passed"
    STAGE_FAILED = "stage_failed"
    GATE_FAILED = "gate_failed"


@dataclass(frozen=True, kw_only=True)
class HistoryLink(Part):
    """Where a build was appended as a TensorBoard step (`--tensorboard`): the run folder, the step, the commit."""

    RANGES = {"step": NON_NEGATIVE}

    tensorboard: str | None = None
    step: int | None = None
    commit: str | None = None


@dataclass(frozen=True, kw_only=True)
class GraphOverlays(Part):
    """Model Explorer node-data files written beside an artifact (paths relative to the build folder; None: not
    measured for it) and the adapter that draws its graph: `edgepipe explore` shows them."""

    OPTIONAL = ("sqnr_db", "note")
    adapter: str | None = None
    latency_ms: str | None = None
    sqnr_db: str | None = None
    precision: str | None = None
    note: str | None = None           # what is missing and why (no float artifact to compare with, ...)


@dataclass(frozen=True, kw_only=True)
class LoadLevel(Part):
    """One level of a server's load test: `concurrency` clients sending requests back to back until `requests`
    were sent or the level's time limit passed. Latencies are per request, client side; errors count every
    answer other than the model's outputs (an error status, a refused or timed-out connection)."""

    RANGES = {"concurrency": COUNT, "requests": NON_NEGATIVE, "answered": NON_NEGATIVE, "errors": NON_NEGATIVE,
              "seconds": NON_NEGATIVE, "p50_ms": NON_NEGATIVE, "p90_ms": NON_NEGATIVE, "p99_ms": NON_NEGATIVE,
              "throughput_rps": NON_NEGATIVE}

    concurrency: int | None = None
    requests: int | None = None
    answered: int | None = None
    errors: int | None = None
    seconds: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    throughput_rps: float | None = None

    def check_read(self, path: str) -> None:
        """Every request sent is answered or an error, never neither."""
        if None not in (self.requests, self.answered, self.errors) and self.requests != (self.answered or 0) + (
                self.errors or 0):
            raise ReportFieldError(f"{path}: {self.requests} requests but {self.answered} answered and "
                                   f"{self.errors} errors")


@dataclass(frozen=True, kw_only=True)
class ServerLoad(Part):
    """A served artifact under a bounded load test on loopback: the server, where it ran, each concurrency level
    and the server's peak resident memory (every process it started) during the test."""

    RANGES = {"peak_memory_mb": NON_NEGATIVE}

    server: str | None = None
    measured_on: str | None = None
    peak_memory_mb: float | None = None
    levels: tuple[LoadLevel, ...] = ()

    @property
    def worst_p99_ms(self) -> float | None:
        """The p99 at the highest concurrency tested (what `max-p99-ms` holds)."""
        return max(self.levels, key=lambda lv: lv.concurrency or 0).p99_ms if self.levels else None

    @property
    def best_throughput_rps(self) -> float | None:
        """The highest throughput any level reached (what `min-throughput-rps` holds)."""
        values = [lv.throughput_rps for lv in self.levels if lv.throughput_rps is not None]
        return max(values) if values else None


@dataclass(frozen=True, kw_only=True)
class StageError(Part):
    """Why an artifact failed, and in which stage: the error class name decides the exit code."""

    stage: str | None = None
    type: str | None = None
    message: str | None = None

    @classmethod
    def of(cls, stage: str, error: EdgepipeError) -> "StageError":
        return cls(stage=stage, type=type(error).__name__, message=printable(error))


@dataclass(frozen=True, kw_only=True)
class RouteStep(Part):
    """One step of the route an artifact took: what it did, which tool, the versions of its packages."""

    step: str | None = None
    tool: str | None = None
    versions: JsonMap | None = None


@dataclass(frozen=True, kw_only=True)
class ExportReport(Part):
    """How an artifact was made: the converter's own metadata, the time, the plugins and the route."""

    OPTIONAL = ("unvalidated_reason", "route")
    metadata: JsonMap | None = None
    seconds: float | None = None
    bridge: str | None = None
    exporter: str | None = None
    transform: str | None = None
    unvalidated_reason: str | None = None
    route: tuple[RouteStep, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class ArtifactReport(Part):
    """One artifact: its file, status, measurements and validation."""

    REQUIRED = ("format", "precision", "status")
    RANGES = {"size_bytes": POSITIVE, "size_compressed_bytes": POSITIVE, "agreement": FRACTION,
              "max_abs_diff": NON_NEGATIVE, "peak_rss_mb": NON_NEGATIVE, "runtime_memory_mb": NON_NEGATIVE}

    OPTIONAL = ("runner", "generation", "graph_overlays", "server_load")
    format: str | None = None
    precision: str | None = None
    status: Status | None = None
    path: str | None = None
    size_bytes: int | None = None
    size_compressed_bytes: int | None = None
    sha256: str | None = None
    runtime: str | None = None
    runtime_version: str | None = None
    latency_ms: Latency | None = None
    latency_by_threads: tuple[Latency, ...] = ()
    accuracy: float | None = None
    accuracy_drop: float | None = None
    agreement: float | None = None
    max_abs_diff: float | None = None
    validation: Validation | None = None
    measured_on: str | None = None
    export: ExportReport | None = None
    cached: Mapping[str, bool] | None = None
    error: StageError | None = None
    sample_outputs: JsonValue = None
    op_profile: JsonMap | None = None
    op_coverage: Sequence[JsonMap] | None = None
    sensitivity: JsonMap | None = None
    fallback: JsonMap | None = None
    signature: JsonValue = None
    peak_rss_mb: float | None = None
    runtime_memory_mb: float | None = None
    runner: str | None = None
    generation: GenerationReport | None = None
    graph_overlays: GraphOverlays | None = None
    server_load: ServerLoad | None = None

    @property
    def label(self) -> str:
        return f"{self.format}:{self.precision}"

    def check_read(self, path: str) -> None:
        """top-1 and top-5 are fractions; a custom metric (`validation.metric`) may use any finite scale."""
        metric = self.validation.metric if self.validation is not None else None
        if metric in (None, *BUILTIN_METRICS):
            in_range(path, {"accuracy": (self.accuracy, FRACTION), "accuracy_drop": (self.accuracy_drop, DROP_POINTS)})

    @property
    def p50(self) -> float | None:
        return self.latency_ms.p50 if self.latency_ms is not None else None


@dataclass(frozen=True, kw_only=True)
class TensorReport(Part):
    """One named input or output of the source model: shape (a str entry is a dynamic dimension) and dtype."""

    name: str | None = None
    shape: Sequence[int | str] | None = None
    dtype: str | None = None


@dataclass(frozen=True, kw_only=True)
class SourceReport(Part):
    """The model the artifacts came from (or, for `profile`, the artifact itself); the rest stays in `extra`."""

    RANGES = {"params": NON_NEGATIVE, "size_bytes": NON_NEGATIVE}   # 0: weights its source plugin cannot count
    OPTIONAL = ("input_shape", "output_shape", "inputs", "outputs", "task")
    framework: str | None = None
    params: int | None = None
    size_bytes: int | None = None
    accuracy: float | None = None
    fingerprint: str | None = None
    input_shape: Sequence[int | str] | None = None
    output_shape: Sequence[int | str] | None = None
    inputs: tuple[TensorReport, ...] | None = None
    outputs: tuple[TensorReport, ...] | None = None
    task: str | None = None


@dataclass(frozen=True, kw_only=True)
class Report(Part):
    """A build's (or a profile's) report: the source of truth every view renders."""

    REQUIRED = ("schema_version", "target", "passed", "status", "source", "artifacts")
    RANGES = {"stage_timings_s": NON_NEGATIVE}
    OPTIONAL = ("bundle", "log", "history")
    schema_version: int = SCHEMA_VERSION
    edgepipe_version: str | None = None
    target: str | None = None
    passed: bool | None = None
    status: ReportStatus | None = None
    source: SourceReport = field(default_factory=SourceReport)
    artifacts: tuple[ArtifactReport, ...] = ()
    checks: tuple[Check, ...] = ()
    budgets: Mapping[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    stage_timings_s: Mapping[str, float] = field(default_factory=dict)
    host: JsonMap | None = None
    tool_versions: JsonMap | None = None
    config: JsonMap | None = None
    bundle: JsonMap | None = None
    log: str | None = None
    history: HistoryLink | None = None   # where this build was appended to a TensorBoard history

    @classmethod
    def from_json(cls, data: JsonMap, path: str = "") -> "Report":
        """A report of a readable version, every field checked (strict.py); a wrong one is a ReportFieldError
        naming its JSON path."""
        version = data.get("schema_version")
        if isinstance(version, bool) or version not in READABLE_VERSIONS:
            where = f"{path}.schema_version" if path else "schema_version"
            raise ReportFieldError(f"{where} is {version!r:.40}; this edgepipe reads versions "
                                   f"{' and '.join(map(str, READABLE_VERSIONS))}. Rebuild it, or update the baseline")
        return super().from_json(data, path)

    def check_read(self, path: str) -> None:
        metrics = {a.validation.metric for a in self.artifacts if a.validation is not None}
        if metrics <= {None, *BUILTIN_METRICS}:
            in_range(f"{path}.source" if path else "source", {"accuracy": (self.source.accuracy, FRACTION)})
