"""The four nouns (Model, Artifact, Target, Report pieces) as plain, framework-free data."""
from __future__ import annotations

from dataclasses import dataclass, field

from edge_pipeline.json_types import JsonObject, JsonValue
from edge_pipeline.precision import Precision

__all__ = ["JsonObject", "JsonValue", "OutputSpec", "ProfileSettings", "SourceSpec", "TASK_METRICS", "TASKS", "Target",
           "TEXT_GENERATION", "FEATURE_EXTRACTION"]

# The task metrics built in (measure.validate.BUILTIN_METRICS); or "package.module:function" (outputs, labels) -> float,
# higher is better.
TASK_METRICS = ("top1", "top5", "retrieval")

# What a model does decides how its artifacts are judged and measured. "classification" and "tensor" are told
# apart by the data (labels or none); a language model's task comes from its source.
TEXT_GENERATION = "text-generation"     # a decoder with a KV cache: token-level tiers, TTFT and tokens/s
FEATURE_EXTRACTION = "feature-extraction"   # an encoder's embeddings: cosine and retrieval agreement
TASKS = ("classification", "tensor", TEXT_GENERATION, FEATURE_EXTRACTION)


@dataclass(frozen=True, order=True)
class OutputSpec:
    """One (format, precision) output a target asks for, written `format:precision`. The precision is a
    Precision, parsed once here (a name is accepted for convenience and parsed: an unknown one is a ConfigError
    listing the valid names); the report and the file stem spell its name."""

    format: str
    precision: Precision = Precision.parse("fp32")

    def __post_init__(self) -> None:
        if isinstance(self.precision, str):
            object.__setattr__(self, "precision", Precision.parse(self.precision, f"'{self.format}:{self.precision}'"))

    @classmethod
    def parse(cls, text: str, where: str | None = None) -> "OutputSpec":
        fmt, _, name = text.partition(":")
        return cls(fmt.strip(), Precision.parse((name or "fp32").strip(), where or repr(text.strip())))

    @property
    def label(self) -> str:
        return f"{self.format}:{self.precision.name}"

    @property
    def stem(self) -> str:
        return f"model-{self.precision.name}"


@dataclass(frozen=True)
class ProfileSettings:
    warmup: int = 10
    runs: int = 100
    threads: tuple[int, ...] = (1, 0)  # 0 means "all host cores"
    memory_mb: float | None = None      # what loading + running the model may add to the process (device budget)
    load_concurrency: tuple[int, ...] = (1, 8, 32)   # a served artifact's load test: clients at once, per level
    load_requests: int = 200            # requests per level (fewer when the level's time limit passes first)
    load_seconds: float = 20.0          # each level's time limit


@dataclass(frozen=True)
class Target:
    """A named device profile as data: what to build, how to measure it, what to enforce."""

    name: str
    description: str
    outputs: tuple[OutputSpec, ...]
    budgets: dict[str, float] = field(default_factory=dict)   # budget name (see report.gating.BUDGETS) -> limit
    profile: ProfileSettings = ProfileSettings()
    device_class: str = "phone"
    bundle: str | None = None           # sample_apps/<bundle> template filled after a build
    max_input_rank: int | None = None   # e.g. 4 for TF.js's wasm backend kernels
    task_outputs: tuple[tuple[str, tuple[OutputSpec, ...]], ...] = ()   # (task, its outputs) where not `outputs`

    task_bundles: tuple[tuple[str, str], ...] = ()   # (task, its sample_apps/ template) where not `bundle`

    def outputs_for(self, task: str) -> tuple[OutputSpec, ...]:
        """The outputs built for a model of `task`: the task's own list where the target has one."""
        return next((outputs for name, outputs in self.task_outputs if name == task), self.outputs)

    def bundle_for(self, task: str | None) -> str | None:
        """The demo-app template for a model of `task`: the task's own where the target has one."""
        return next((bundle for name, bundle in self.task_bundles if name == task), self.bundle)


@dataclass(frozen=True)
class SourceSpec:
    """Where the trained model and its data come from; everything a worker needs to rebuild it."""

    example: str | None = "torch-digits"
    model: str | None = None            # "pkg.module:factory" or a .pt2 path
    weights: str | None = None          # state_dict file for a factory
    example_inputs: str | list[int] | JsonObject | None = None   # shape, named specs, or a function
    calibration: str | None = None
    evaluate: str | None = None
    metric: str = "top1"                # top1 | top5 | "package.module:function" (outputs, labels) -> float
    metric_output: str | None = None    # which output the metric reads (multi-output models)
    keras_safe_mode: bool = True        # False lets a trusted .keras file run its Lambda layers
    base_dir: str = "."                 # relative paths and modules resolve from here
    prune: JsonObject | None = None     # {"amount": 0.5, "kind": "structured", "fine_tune": "pkg.mod:fn"}
    evaluation_text: str | None = None  # a language model's evaluation text: a file under base_dir
    max_context: int | None = None      # a language model's static KV cache length (None: its own, up to 512)
    prefill_lengths: tuple[int, ...] | None = None   # a language model's prefill signatures (None: 32, 128, 512)
    prompts: tuple[str, ...] | None = None   # a language model's prompts, continued greedily (None: the windows')
    task: str | None = None                  # a language model's task (None: read from its architecture)
    batch_dims: JsonObject | None = None   # a function's inputs: name -> batch axis, or False for none
    state: JsonObject | None = None        # [state]: state output -> the input it feeds (None: detected by name)
    sequence_steps: int = 50               # a stateful model's calls per validated sequence
    chunk_duration_ms: float | None = None  # the signal one call consumes: the report's real-time factor
    initial_state: str = "zeros"           # a sequence's first state: zeros, or "data" (what its first call holds)

    def to_dict(self) -> JsonObject:
        return {"example": self.example, "model": self.model, "weights": self.weights,
                "example_inputs": self.example_inputs, "calibration": self.calibration, "evaluate": self.evaluate,
                "metric": self.metric, "metric_output": self.metric_output, "keras_safe_mode": self.keras_safe_mode,
                "base_dir": self.base_dir, "prune": self.prune, "evaluation_text": self.evaluation_text,
                "max_context": self.max_context,
                "prefill_lengths": list(self.prefill_lengths) if self.prefill_lengths else None,
                "prompts": list(self.prompts) if self.prompts else None, "task": self.task,
                "batch_dims": self.batch_dims, "state": self.state, "sequence_steps": self.sequence_steps,
                "chunk_duration_ms": self.chunk_duration_ms, "initial_state": self.initial_state}
