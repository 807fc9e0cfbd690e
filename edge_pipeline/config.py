"""Reads `edgepipe.toml` or `[tool.edgepipe]` into frozen dataclasses; every error quotes its TOML path."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from edge_pipeline import registry
from edge_pipeline.config_files import FoundConfig, check_keys, explicit_config, find_config
from edge_pipeline.config_prune import check_prune, installed_pruners, pruner_for  # the last two: re-exported
from edge_pipeline.errors import ConfigError
from edge_pipeline.host import DataLimits
from edge_pipeline.numbers import DECIBELS, FRACTION, PERCENTAGE_POINTS, POSITIVE, Range, finite
from edge_pipeline.paths import plain_name
from edge_pipeline.plugins import Transform
from edge_pipeline.precision import THRESHOLD_KEYS, Precision
from edge_pipeline.report.gating import validate_budget
from edge_pipeline.types import (
    FEATURE_EXTRACTION,
    TASK_METRICS,
    TEXT_GENERATION,
    JsonObject,
    JsonValue,
    OutputSpec,
    ProfileSettings,
    SourceSpec,
    Target,
)

SOURCE_KEYS = {"example": str, "model": str, "weights": str, "example-inputs": (str, list, dict), "calibration": str,
               "evaluate": str, "metric": str, "metric-output": str, "keras-safe-mode": bool, "evaluation-text": str,
               "max-context": int, "prefill-lengths": list, "prompts": list, "task": str, "batch-dims": dict,
               "state": dict,
               "sequence-steps": int, "chunk-duration-ms": (int, float), "initial-state": str}
MAX_CONTEXT = 1 << 20
PROFILE_KEYS = {"warmup": int, "runs": int, "threads": list, "memory-mb": (int, float)}
TARGET_KEYS = {"formats": list, "budgets": dict, "profile": dict, "description": str, "extends": str}
QUANT_KEYS = {"calibration-samples": int, "calibration-method": str, "sensitivity": (str, bool), "algorithms": list,
              "group-size": int}
GROUP_SIZES = (16, 32, 64, 128, 256)   # weights per scale of a grouped 4-bit quantizer (each transform offers some)
SENSITIVITY_MODES = ("on-failure", "always", "never")   # true / false: deprecated aliases of always / never
MODEL_DATA_KEYS = ("weights", "example-inputs", "calibration", "evaluate", "evaluation-samples",   # need `model`
                   "evaluation-text", "max-context", "prompts", "task", "batch-dims", "state", "sequence-steps",
                   "chunk-duration-ms", "initial-state")
LIMIT_KEYS = {"max-memory-mb": (int, float), "evaluation-samples": int}    # see DataLimits
TOP_KEYS = {**SOURCE_KEYS, **LIMIT_KEYS, "profile": dict, "targets": dict, "prune": dict, "quantization": dict,
            "validation": dict, "report": dict}
REPORT_KEYS = {"tensorboard": str}   # [report] tensorboard = "DIR": each build appended as a TensorBoard step
MAX_THREADS = 256   # a fixed bound, so a config valid on a 64-core CI runner is valid on a laptop too


@dataclass(frozen=True)
class QuantizationConfig:
    """`[quantization]`: calibration samples and method of int8 artifacts (None: the transform's own default) and
    when they get a per-layer sensitivity ranking. `given`: the keys set (by the file or a flag), in order, so that
    `to_dict` writes exactly those, as report.json's `config.quantization` always has."""

    calibration_samples: int | None = None
    calibration_method: str | None = None
    sensitivity: str = "on-failure"          # on-failure | always | never
    algorithms: tuple[str, ...] | None = None   # None: each transform's own defaults; () runs none
    group_size: int | None = None            # grouped 4-bit weights (8da4w, int4); None: the transform's own
    given: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: JsonObject) -> "QuantizationConfig":
        """From `check_quantization`'s checked table."""
        samples, method, mode, algorithms, group = (settings.get(k) for k in (
            "calibration_samples", "calibration_method", "sensitivity", "algorithms", "group_size"))
        return cls(samples if isinstance(samples, int) else None, method if isinstance(method, str) else None,
                   mode if isinstance(mode, str) else "on-failure",
                   tuple(str(a) for a in algorithms) if isinstance(algorithms, list) else None,
                   group if isinstance(group, int) else None, tuple(settings))

    def with_sensitivity(self, mode: str) -> "QuantizationConfig":
        given = self.given if "sensitivity" in self.given else (*self.given, "sensitivity")
        return replace(self, sensitivity=mode, given=given)

    def to_dict(self) -> JsonObject:
        values: JsonObject = {"calibration_samples": self.calibration_samples,
                              "calibration_method": self.calibration_method, "sensitivity": self.sensitivity,
                              "algorithms": list(self.algorithms) if self.algorithms is not None else None,
                              "group_size": self.group_size}
        return {key: values[key] for key in self.given}


@dataclass(frozen=True)
class Config:
    """The resolved configuration; `origin` says which file it came from. `profile` and `targets` are the file's
    checked tables (resolve_target applies them); `validation`: precision -> threshold overrides. `max_memory_mb`
    and `evaluation_samples` bound what a build allocates and draws (see `limits`); `warnings`: what the reader of
    the report should know about how the file was chosen."""

    source: SourceSpec = SourceSpec()
    profile: JsonObject = field(default_factory=dict)
    targets: dict[str, JsonObject] = field(default_factory=dict)
    quantization: QuantizationConfig = QuantizationConfig()
    validation: dict[str, dict[str, float]] = field(default_factory=dict)
    origin: str | None = None
    max_memory_mb: float | None = None
    evaluation_samples: int | None = None
    warnings: tuple[str, ...] = ()
    tensorboard: str | None = None       # [report] tensorboard: the log folder builds are appended to (resolved)

    def to_dict(self) -> JsonObject:
        return {"origin": self.origin, "source": self.source.to_dict(), "profile": self.profile,
                "targets": dict(self.targets), "quantization": self.quantization.to_dict(),
                "validation": dict(self.validation), "max_memory_mb": self.max_memory_mb,
                "evaluation_samples": self.evaluation_samples, "warnings": list(self.warnings),
                "tensorboard": self.tensorboard}

    def limits(self, max_memory_mb: float | None = None) -> DataLimits:
        """What a command may allocate and draw: `max_memory_mb` (--max-memory, checked by the caller) over the
        file's `max-memory-mb`, the file's sample caps, then whatever the environment sets (EDGEPIPE_MAX_MEMORY_MB,
        ...); the default budget is half the memory this process may use (host.default_memory_budget)."""
        memory = max_memory_mb if max_memory_mb is not None else self.max_memory_mb
        own = DataLimits(memory, self.quantization.calibration_samples, self.evaluation_samples)
        return own.over(DataLimits.from_environ())


def check_memory_mb(value: object, where: str) -> float | None:
    """A memory budget in MiB (`max-memory-mb`, --max-memory), checked where it enters: a finite number > 0, or
    None (not set)."""
    return None if value is None else finite(value, where, POSITIVE)


def _prefill_lengths(value: JsonValue, where: str) -> tuple[int, ...]:
    """A language model's prefill signatures (LiteRT): distinct token counts, each from 1 to MAX_CONTEXT."""
    if not isinstance(value, list) or not value or not all(
            isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_CONTEXT for n in value) \
            or len(set(value)) != len(value):
        raise ConfigError(f"'{where}' must be a list of distinct token counts from 1 to {MAX_CONTEXT}, got {value!r}")
    return tuple(sorted(value))


MAX_PROMPTS, MAX_PROMPT_CHARS = 64, 8192
LANGUAGE_TASKS = (TEXT_GENERATION, FEATURE_EXTRACTION)   # `task`: what a language model is built for


def _prompts(value: JsonValue, where: str) -> tuple[str, ...]:
    """A language model's own prompts: from 1 to MAX_PROMPTS non-blank strings, each bounded (every one is
    continued greedily by the source and by every artifact)."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_PROMPTS or not all(
            isinstance(p, str) and p.strip() and len(p) <= MAX_PROMPT_CHARS for p in value):
        raise ConfigError(f"'{where}' must be a list of 1 to {MAX_PROMPTS} non-blank strings of at most "
                          f"{MAX_PROMPT_CHARS} characters, got {str(value)[:120]}")
    return tuple(value)


def load_config(path: Path | None = None, cwd: Path | None = None) -> Config:
    """Loads an explicit file, or discovers one in `cwd`; no file gives the built-in defaults."""
    found: FoundConfig | None = explicit_config(path) if path is not None else find_config(cwd or Path.cwd())
    if found is None:
        return Config()
    return parse_config(found.table, found.prefix, found.file, found.warnings)


MAX_SEQUENCE_STEPS = 100_000
INITIAL_STATES = ("zeros", "data")   # where each validated sequence's state starts: zeros, or the data's first call


def _check_state(table: Mapping[str, JsonValue], prefix: str) -> None:
    """`[state]` maps each state output to the input it feeds; `sequence-steps`: calls per validated sequence."""
    state = table.get("state")
    if isinstance(state, dict):
        for output, target in state.items():
            if not isinstance(target, str) or not target:
                raise ConfigError(f"'{_join(prefix, f'state.{output}')}' must name the input this state output "
                                  f"feeds, got {target!r}")
    steps = table.get("sequence-steps")
    if steps is not None and not (isinstance(steps, int) and not isinstance(steps, bool)
                                  and 2 <= steps <= MAX_SEQUENCE_STEPS):
        raise ConfigError(f"'{_join(prefix, 'sequence-steps')}' must be an integer from 2 to {MAX_SEQUENCE_STEPS}, "
                          f"got {steps!r}")
    initial = table.get("initial-state", "zeros")
    if initial not in INITIAL_STATES:
        raise ConfigError(f"'{_join(prefix, 'initial-state')}' must be one of: {', '.join(INITIAL_STATES)}, got "
                          f"{initial!r}")
    if "chunk-duration-ms" in table:
        finite(table["chunk-duration-ms"], f"'{_join(prefix, 'chunk-duration-ms')}'", POSITIVE)


def parse_config(table: JsonValue, prefix: str, file: Path, warnings: tuple[str, ...] = ()) -> Config:
    if not isinstance(table, dict):
        raise ConfigError(f"{file}: '{prefix or 'the file'}' must be a table of edgepipe settings, got "
                          f"{type(table).__name__} {table!r:.40}")
    check_keys(table, TOP_KEYS, prefix)
    _check_model_data(table, prefix)
    base = file.parent.resolve()
    source_fields = {k.replace("-", "_"): v for k, v in table.items() if k in SOURCE_KEYS}
    if "model" in table and "example" not in table:
        source_fields["example"] = None
    shape = table.get("example-inputs")
    if isinstance(shape, list) and not (shape and all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                                                      for d in shape)):
        raise ConfigError(f"'{_join(prefix, 'example-inputs')}' must be a shape of positive integers")
    if isinstance(table.get("example-inputs"), dict):
        from edge_pipeline.sources.spec_table import check_spec_table

        check_spec_table(table["example-inputs"], _join(prefix, "example-inputs"))
    if "batch-dims" in table:
        from edge_pipeline.sources.spec_table import check_batch_dims

        if not isinstance(table.get("example-inputs"), str):
            raise ConfigError(f"'{_join(prefix, 'batch-dims')}' describes a function's example inputs; in a table of "
                              f"named specs give each its batch-dim (or batch = false)")

        source_fields["batch_dims"] = check_batch_dims(table["batch-dims"], _join(prefix, "batch-dims"))
    _check_state(table, prefix)
    metric = source_fields.get("metric", "top1")
    if metric not in TASK_METRICS and (":" not in metric or metric.startswith(":") or metric.endswith(":")):
        raise ConfigError(f"'{_join(prefix, 'metric')}' must be one of: {', '.join(TASK_METRICS)}, or "
                          f"'package.module:function' taking (outputs, labels); got {metric!r}")
    if "prune" in table:
        source_fields["prune"] = check_prune(table["prune"], _join(prefix, "prune"))
    context = table.get("max-context")
    if context is not None and not (isinstance(context, int) and 8 <= context <= MAX_CONTEXT):
        raise ConfigError(f"'{_join(prefix, 'max-context')}' must be an integer from 8 to {MAX_CONTEXT}, "
                          f"got {context!r}")
    if "prefill-lengths" in table:
        source_fields["prefill_lengths"] = _prefill_lengths(table["prefill-lengths"], _join(prefix, "prefill-lengths"))
    if table.get("task", LANGUAGE_TASKS[0]) not in LANGUAGE_TASKS:
        raise ConfigError(f"'{_join(prefix, 'task')}' must be one of {', '.join(LANGUAGE_TASKS)} (a language model's "
                          f"task; others are read from the model), got {table['task']!r}")
    if "prompts" in table:
        source_fields["prompts"] = _prompts(table["prompts"], _join(prefix, "prompts"))
    source = SourceSpec(**source_fields, base_dir=str(base))
    profile = table.get("profile", {})
    _check_profile(profile, _join(prefix, "profile"))
    targets = table.get("targets", {})
    for name, tdef in targets.items():
        tpath = _join(prefix, f"targets.{name}")
        plain_name(name, f"'{tpath}': target name")
        if not isinstance(tdef, dict):
            raise ConfigError(f"'{tpath}' must be a table")
        check_keys(tdef, TARGET_KEYS, tpath)
        if not isinstance(tdef.get("budgets", {}), dict):
            raise ConfigError(f"'{tpath}.budgets' must be a table")
        for name, value in tdef.get("budgets", {}).items():
            validate_budget(name, value, f"{tpath}.budgets.{name}")
        _check_profile(tdef.get("profile", {}), f"{tpath}.profile")
        for i, fmt in enumerate(tdef.get("formats", [])):
            if not isinstance(fmt, str) or not fmt.strip():
                raise ConfigError(f"'{tpath}.formats[{i}]' must be a 'format:precision' string")
            where = f"'{tpath}.formats[{i}]' ({fmt.strip()!r})"
            Precision.parse(OutputSpec.parse(fmt, where).precision.name, where, buildable=True)
    quantization = QuantizationConfig.from_settings(
        check_quantization(table.get("quantization", {}), _join(prefix, "quantization")))
    validation = check_validation(table.get("validation", {}), _join(prefix, "validation"))
    report = table.get("report", {})
    check_keys(report, REPORT_KEYS, _join(prefix, "report"))
    tensorboard = str(base / report["tensorboard"]) if report.get("tensorboard") else None
    return Config(source=source, profile=profile, targets=targets, quantization=quantization,
                  validation=validation, origin=str(file), warnings=warnings, tensorboard=tensorboard,
                  max_memory_mb=check_memory_mb(table.get("max-memory-mb"), f"'{_join(prefix, 'max-memory-mb')}'"),
                  evaluation_samples=_check_evaluation_samples(table, prefix))


THRESHOLD_RANGES = {"min-sqnr-db": DECIBELS, "min-agreement": FRACTION, "max-accuracy-drop": PERCENTAGE_POINTS,
                    "min-token-agreement": FRACTION, "max-ppl-increase-pct": Range(0.0, 1000.0)}


def check_validation(table: JsonObject, path: str) -> dict[str, dict[str, float]]:
    """`[validation.int8] min-sqnr-db = 12` overrides a precision's acceptance thresholds (see precision.py);
    a table for an unknown precision would silently never apply, so it is refused."""
    for precision in table:
        Precision.parse(precision, f"'{_join(path, precision)}'")
    check_keys(table, {p: dict for p in Precision.names()}, path)
    overrides = {}
    for precision, values in table.items():
        check_keys(values, {k: (int, float) for k in THRESHOLD_KEYS}, f"{path}.{precision}")
        overrides[precision] = {k.replace("-", "_"): finite(v, f"'{path}.{precision}.{k}'", THRESHOLD_RANGES[k])
                                for k, v in values.items()}
    return overrides


def check_quantization(table: JsonObject, path: str) -> JsonObject:
    """`[quantization]` checked, with Python names (QuantizationConfig.from_settings types it): calibration samples
    and method of int8, and when int8 artifacts get a per-layer sensitivity ranking."""
    sensitivity = table.get("sensitivity")
    table = {k: v for k, v in table.items() if k != "sensitivity"}   # str or (deprecated) bool: checked below
    check_keys(table, QUANT_KEYS, path)
    if "calibration-samples" in table and table["calibration-samples"] < 1:
        raise ConfigError(f"'{path}.calibration-samples' must be >= 1, got {table['calibration-samples']}")
    method = table.get("calibration-method")
    offered = calibration_methods()
    if method is not None and method not in offered:
        raise ConfigError(f"'{path}.calibration-method' must be one of: {', '.join(offered)}; got {method!r}")
    algorithms = table.get("algorithms")
    known = ptq_algorithms()
    if algorithms is not None and (not all(isinstance(a, str) for a in algorithms)
                                   or any(a not in known for a in algorithms)):
        raise ConfigError(f"'{path}.algorithms' must list algorithms from: {', '.join(known)}; got {algorithms!r}")
    group = table.get("group-size")
    if group is not None and group not in GROUP_SIZES:
        raise ConfigError(f"'{path}.group-size' must be one of: {', '.join(map(str, GROUP_SIZES))}; got {group!r}")
    settings = {k.replace("-", "_"): v for k, v in table.items()}
    if sensitivity is not None:
        settings["sensitivity"] = check_sensitivity(sensitivity, f"{path}.sensitivity")
    return settings


def check_sensitivity(value: JsonValue, where: str) -> str:
    """A sensitivity mode; the old booleans are deprecated aliases (true: "always", false: "never")."""
    if isinstance(value, bool):
        return "always" if value else "never"
    if not isinstance(value, str) or value not in SENSITIVITY_MODES:
        raise ConfigError(f"'{where}' must be one of: {', '.join(SENSITIVITY_MODES)} (true and false are deprecated "
                          f"aliases of always and never); got {value!r}")
    return value


def calibration_methods() -> tuple[str, ...]:
    """Every calibration method an installed transform offers (each output's own is checked when planned)."""
    return tuple(sorted({m for t in registry.load_all(Transform)[0] if t.needs_calibration
                         for m in t.calibration_methods}))


def ptq_algorithms() -> tuple[str, ...]:
    """Every post-training algorithm an installed transform offers (each output's own are checked when planned)."""
    return tuple(sorted({a for t in registry.load_all(Transform)[0] for a in t.algorithms}))


def _check_evaluation_samples(table: JsonObject, prefix: str) -> int | None:
    """`evaluation-samples` caps what is drawn from `evaluate`: without one it would cap nothing."""
    samples = table.get("evaluation-samples")
    where = _join(prefix, "evaluation-samples")
    if samples is not None and samples < 1:
        raise ConfigError(f"'{where}' must be >= 1, got {samples}")
    if samples is not None and "evaluate" not in table:
        raise ConfigError(f"'{where}' caps the samples drawn from '{_join(prefix, 'evaluate')}', which is not set")
    return samples


def _check_model_data(table: JsonObject, prefix: str) -> None:
    """Data for a user model without the model would silently build the built-in example instead."""
    given = [key for key in MODEL_DATA_KEYS if key in table]
    if given and "model" not in table:
        raise ConfigError(f"'{_join(prefix, given[0])}' is set but '{_join(prefix, 'model')}' is not: set model = "
                          f"\"pkg.module:factory\" (or a model file), or remove {', '.join(given)} to build the "
                          f"built-in example")


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _check_profile(profile: JsonObject, path: str) -> None:
    check_keys(profile, PROFILE_KEYS, path)
    for key in ("warmup", "runs"):
        if key in profile and profile[key] < (0 if key == "warmup" else 1):
            raise ConfigError(f"'{path}.{key}' must be {'>= 0' if key == 'warmup' else '>= 1'}")
    if "memory-mb" in profile:
        check_memory_mb(profile["memory-mb"], f"'{path}.memory-mb'")
    if "threads" in profile and not profile["threads"]:
        raise ConfigError(f"'{path}.threads' is empty: list at least one thread count (e.g. [1, \"all\"]); "
                          f"no thread count would measure no latency")
    for t in profile.get("threads", []):   # 0 threads measures nothing; 100000 threads hangs the runtime
        if t != "all" and not (isinstance(t, int) and not isinstance(t, bool) and 1 <= t <= MAX_THREADS):
            raise ConfigError(f"'{path}.threads' entries must be integers from 1 to {MAX_THREADS} or \"all\", "
                              f"got {t!r:.40}")


def resolve_target(base: Target, config: Config, cli_budgets: dict[str, float] | None = None) -> Target:
    """Applies file settings over a built-in profile, then budgets given on the command line."""
    override = config.targets.get(base.name, {})
    outputs, task_outputs = base.outputs, base.task_outputs
    if "formats" in override:      # the user's formats, whatever the model's task
        outputs, task_outputs = tuple(OutputSpec.parse(f) for f in override["formats"]), ()
    budgets = {**base.budgets, **{k: float(v) for k, v in override.get("budgets", {}).items()}}
    profile = base.profile
    for table in (config.profile, override.get("profile", {})):
        profile = _apply_profile(profile, table)
    budgets.update(cli_budgets or {})
    return replace(base, outputs=outputs, task_outputs=task_outputs, budgets=budgets, profile=profile,
                   description=override.get("description", base.description))


def _apply_profile(profile: ProfileSettings, table: JsonObject) -> ProfileSettings:
    """A checked `profile` table (see _check_profile) over `profile`; "all" threads is 0."""
    warmup, runs, memory, threads = (table.get(k) for k in ("warmup", "runs", "memory-mb", "threads"))
    counts = tuple(t if isinstance(t, int) else 0 for t in threads) if isinstance(threads, list) else ()
    return replace(profile, warmup=warmup if isinstance(warmup, int) else profile.warmup,
                   runs=runs if isinstance(runs, int) else profile.runs, threads=counts or profile.threads,
                   memory_mb=float(memory) if isinstance(memory, (int, float)) else profile.memory_mb)
