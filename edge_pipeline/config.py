"""Reads `edgepipe.toml` or `[tool.edgepipe]` into frozen dataclasses; every error quotes its TOML path."""
from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from edge_pipeline import registry
from edge_pipeline.errors import ConfigError
from edge_pipeline.numbers import DECIBELS, FRACTION, PERCENTAGE_POINTS, finite
from edge_pipeline.paths import plain_name
from edge_pipeline.plugins import Pruner, Transform
from edge_pipeline.precision import THRESHOLD_KEYS, Precision
from edge_pipeline.report.gating import validate_budget
from edge_pipeline.types import TASK_METRICS, JsonObject, JsonValue, OutputSpec, ProfileSettings, SourceSpec, Target

KeyTypes = Mapping[str, type | tuple[type, ...]]   # allowed keys of a TOML table -> the types each may have
SOURCE_KEYS = {"example": str, "model": str, "weights": str, "example-inputs": (str, list, dict), "calibration": str,
               "evaluate": str, "metric": str, "metric-output": str, "keras-safe-mode": bool}
PROFILE_KEYS = {"warmup": int, "runs": int, "threads": list, "memory-mb": (int, float)}
TARGET_KEYS = {"formats": list, "budgets": dict, "profile": dict, "description": str, "extends": str}
PRUNE_KEYS = {"amount": (int, float), "kind": str, "fine-tune": str, "scope": str}
QUANT_KEYS = {"calibration-samples": int, "calibration-method": str, "sensitivity": (str, bool)}
SENSITIVITY_MODES = ("on-failure", "always", "never")   # true / false: deprecated aliases of always / never
MODEL_DATA_KEYS = ("weights", "example-inputs", "calibration", "evaluate")   # meaningful only with `model`
TOP_KEYS = {**SOURCE_KEYS, "profile": dict, "targets": dict, "prune": dict, "quantization": dict, "validation": dict}


@dataclass(frozen=True)
class QuantizationConfig:
    """`[quantization]`: calibration samples and method of int8 artifacts (None: the transform's own default) and
    when they get a per-layer sensitivity ranking. `given`: the keys set (by the file or a flag), in order, so that
    `to_dict` writes exactly those, as report.json's `config.quantization` always has."""

    calibration_samples: int | None = None
    calibration_method: str | None = None
    sensitivity: str = "on-failure"          # on-failure | always | never
    given: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: JsonObject) -> "QuantizationConfig":
        """From `check_quantization`'s checked table."""
        samples, method, mode = (settings.get(k) for k in ("calibration_samples", "calibration_method", "sensitivity"))
        return cls(samples if isinstance(samples, int) else None, method if isinstance(method, str) else None,
                   mode if isinstance(mode, str) else "on-failure", tuple(settings))

    def with_sensitivity(self, mode: str) -> "QuantizationConfig":
        given = self.given if "sensitivity" in self.given else (*self.given, "sensitivity")
        return replace(self, sensitivity=mode, given=given)

    def to_dict(self) -> JsonObject:
        values: JsonObject = {"calibration_samples": self.calibration_samples,
                              "calibration_method": self.calibration_method, "sensitivity": self.sensitivity}
        return {key: values[key] for key in self.given}


@dataclass(frozen=True)
class Config:
    """The resolved configuration; `origin` says which file it came from. `profile` and `targets` are the file's
    checked tables (resolve_target applies them); `validation`: precision -> threshold overrides."""

    source: SourceSpec = SourceSpec()
    profile: JsonObject = field(default_factory=dict)
    targets: dict[str, JsonObject] = field(default_factory=dict)
    quantization: QuantizationConfig = QuantizationConfig()
    validation: dict[str, dict[str, float]] = field(default_factory=dict)
    origin: str | None = None

    def to_dict(self) -> JsonObject:
        return {"origin": self.origin, "source": self.source.to_dict(), "profile": self.profile,
                "targets": dict(self.targets), "quantization": self.quantization.to_dict(),
                "validation": dict(self.validation)}


def _check_keys(table: JsonObject, allowed: KeyTypes, path: str) -> None:
    for key, value in table.items():
        where = f"{path}.{key}" if path else key
        if key not in allowed:
            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"unknown key '{where}'. Valid keys: {', '.join(sorted(allowed))}.{hint}")
        expected = allowed[key]
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
            raise ConfigError(f"'{where}' must be {names}, got {type(value).__name__} {value!r}")


def find_config(start: Path) -> tuple[JsonValue, str, Path] | None:
    """Returns (table, toml prefix, file) for the first edgepipe.toml or [tool.edgepipe] found."""
    for candidate, prefix in ((start / "edgepipe.toml", ""), (start / "pyproject.toml", "tool.edgepipe")):
        if not candidate.is_file():
            continue
        data = read_toml(candidate)
        if prefix:
            tool = data.get("tool", {})
            if not isinstance(tool, dict):
                raise ConfigError(f"{candidate}: 'tool' must be a table, got {type(tool).__name__} {tool!r:.40}")
            data = tool.get("edgepipe")
            if data is None:
                continue
        return data, prefix, candidate
    return None


def read_toml(path: Path) -> JsonObject:
    """A TOML file as a table; unreadable, non-UTF-8 or invalid files are config errors naming the file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                          f"TOML files must be UTF-8") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc


def load_config(path: Path | None = None, cwd: Path | None = None) -> Config:
    """Loads an explicit file, or discovers one in `cwd`; no file gives the built-in defaults."""
    cwd = cwd or Path.cwd()
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        found = find_config(path.parent) if path.name in ("edgepipe.toml", "pyproject.toml") else None
        if found is None or found[2].resolve() != path.resolve():
            found = (read_toml(path), "", path)
    else:
        found = find_config(cwd)
    if found is None:
        return Config()
    return parse_config(*found)


def parse_config(table: JsonValue, prefix: str, file: Path) -> Config:
    if not isinstance(table, dict):
        raise ConfigError(f"{file}: '{prefix or 'the file'}' must be a table of edgepipe settings, got "
                          f"{type(table).__name__} {table!r:.40}")
    _check_keys(table, TOP_KEYS, prefix)
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
        from edge_pipeline.sources.user_data import check_spec_table

        check_spec_table(table["example-inputs"], _join(prefix, "example-inputs"))
    metric = source_fields.get("metric", "top1")
    if metric not in TASK_METRICS and (":" not in metric or metric.startswith(":") or metric.endswith(":")):
        raise ConfigError(f"'{_join(prefix, 'metric')}' must be one of: {', '.join(TASK_METRICS)}, or "
                          f"'package.module:function' taking (outputs, labels); got {metric!r}")
    if "prune" in table:
        source_fields["prune"] = check_prune(table["prune"], _join(prefix, "prune"))
    source = SourceSpec(**source_fields, base_dir=str(base))
    profile = table.get("profile", {})
    _check_profile(profile, _join(prefix, "profile"))
    targets = table.get("targets", {})
    for name, tdef in targets.items():
        tpath = _join(prefix, f"targets.{name}")
        plain_name(name, f"'{tpath}': target name")
        if not isinstance(tdef, dict):
            raise ConfigError(f"'{tpath}' must be a table")
        _check_keys(tdef, TARGET_KEYS, tpath)
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
    return Config(source=source, profile=profile, targets=targets, quantization=quantization,
                  validation=validation, origin=str(file))


THRESHOLD_RANGES = {"min-sqnr-db": DECIBELS, "min-agreement": FRACTION, "max-accuracy-drop": PERCENTAGE_POINTS}


def check_validation(table: JsonObject, path: str) -> dict[str, dict[str, float]]:
    """`[validation.int8] min-sqnr-db = 12` overrides a precision's acceptance thresholds (see precision.py);
    a table for an unknown precision would silently never apply, so it is refused."""
    for precision in table:
        Precision.parse(precision, f"'{_join(path, precision)}'")
    _check_keys(table, {p: dict for p in Precision.names()}, path)
    overrides = {}
    for precision, values in table.items():
        _check_keys(values, {k: (int, float) for k in THRESHOLD_KEYS}, f"{path}.{precision}")
        overrides[precision] = {k.replace("-", "_"): finite(v, f"'{path}.{precision}.{k}'", THRESHOLD_RANGES[k])
                                for k, v in values.items()}
    return overrides


def check_quantization(table: JsonObject, path: str) -> JsonObject:
    """`[quantization]` checked, with Python names (QuantizationConfig.from_settings types it): calibration samples
    and method of int8, and when int8 artifacts get a per-layer sensitivity ranking."""
    sensitivity = table.get("sensitivity")
    table = {k: v for k, v in table.items() if k != "sensitivity"}   # str or (deprecated) bool: checked below
    _check_keys(table, QUANT_KEYS, path)
    if "calibration-samples" in table and table["calibration-samples"] < 1:
        raise ConfigError(f"'{path}.calibration-samples' must be >= 1, got {table['calibration-samples']}")
    method = table.get("calibration-method")
    offered = calibration_methods()
    if method is not None and method not in offered:
        raise ConfigError(f"'{path}.calibration-method' must be one of: {', '.join(offered)}; got {method!r}")
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


def check_prune(table: JsonObject, path: str) -> JsonObject:
    """`prune = { amount = 0.5, kind = "structured", fine-tune = "pkg.module:fn", scope = "global" }`, checked."""
    _check_keys(table, PRUNE_KEYS, path)
    amount = table.get("amount")
    if amount is None or isinstance(amount, bool) or not 0 < amount < 1:
        raise ConfigError(f"'{path}.amount' must be a fraction between 0 and 1 (exclusive), got {amount!r}")
    kind = table.get("kind", "unstructured")
    pruners = installed_pruners()
    if kind not in pruners:
        raise ConfigError(f"'{path}.kind' must be one of: {', '.join(pruners)}; got {kind!r}")
    scopes = pruners[str(kind)].scopes
    scope = table.get("scope", scopes[0])
    if scope not in scopes:
        each = "; ".join(k + ": " + ", ".join(p.scopes) for k, p in pruners.items())
        raise ConfigError(f"'{path}.scope' must be one of: {', '.join(scopes)} for {kind} pruning (the scopes each "
                          f"pruner takes: {each}); got {scope!r}")
    return {"amount": float(amount), "kind": kind, "fine_tune": table.get("fine-tune"), "scope": scope}


def installed_pruners() -> dict[str, type[Pruner]]:
    """`[prune] kind` -> the installed pruner offering it, in name order (also `edgepipe tune`'s search order)."""
    return dict(sorted((p.prune_kind, p) for p in registry.load_all(Pruner)[0]))


def pruner_for(kind: str) -> type[Pruner]:
    """The installed pruner offering `[prune] kind` (checked when the config was read; a pruner uninstalled since
    is named here)."""
    pruners = installed_pruners()
    if kind not in pruners:
        raise ConfigError(f"prune kind '{kind}': no installed pruner offers it (kinds: {', '.join(pruners)})")
    return pruners[kind]


def calibration_methods() -> tuple[str, ...]:
    """Every calibration method an installed transform offers (each output's own is checked when planned)."""
    return tuple(sorted({m for t in registry.load_all(Transform)[0] if t.needs_calibration
                         for m in t.calibration_methods}))


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
    _check_keys(profile, PROFILE_KEYS, path)
    for key in ("warmup", "runs"):
        if key in profile and profile[key] < (0 if key == "warmup" else 1):
            raise ConfigError(f"'{path}.{key}' must be {'>= 0' if key == 'warmup' else '>= 1'}")
    if "memory-mb" in profile and (isinstance(profile["memory-mb"], bool) or profile["memory-mb"] <= 0):
        raise ConfigError(f"'{path}.memory-mb' must be a positive number of MiB, got {profile['memory-mb']!r}")
    if "threads" in profile and not profile["threads"]:
        raise ConfigError(f"'{path}.threads' is empty: list at least one thread count (e.g. [1, \"all\"]); "
                          f"no thread count would measure no latency")
    for t in profile.get("threads", []):
        if not (isinstance(t, int) and t >= 0) and t != "all":
            raise ConfigError(f"'{path}.threads' entries must be positive integers or \"all\", got {t!r}")


def resolve_target(base: Target, config: Config, cli_budgets: dict[str, float] | None = None) -> Target:
    """Applies file settings over a built-in profile, then budgets given on the command line."""
    override = config.targets.get(base.name, {})
    outputs = base.outputs
    if "formats" in override:
        outputs = tuple(OutputSpec.parse(f) for f in override["formats"])
    budgets = {**base.budgets, **{k: float(v) for k, v in override.get("budgets", {}).items()}}
    profile = base.profile
    for table in (config.profile, override.get("profile", {})):
        profile = _apply_profile(profile, table)
    budgets.update(cli_budgets or {})
    return replace(base, outputs=outputs, budgets=budgets, profile=profile,
                   description=override.get("description", base.description))


def _apply_profile(profile: ProfileSettings, table: JsonObject) -> ProfileSettings:
    """A checked `profile` table (see _check_profile) over `profile`; "all" threads is 0."""
    warmup, runs, memory, threads = (table.get(k) for k in ("warmup", "runs", "memory-mb", "threads"))
    counts = tuple(t if isinstance(t, int) else 0 for t in threads) if isinstance(threads, list) else ()
    return replace(profile, warmup=warmup if isinstance(warmup, int) else profile.warmup,
                   runs=runs if isinstance(runs, int) else profile.runs, threads=counts or profile.threads,
                   memory_mb=float(memory) if isinstance(memory, (int, float)) else profile.memory_mb)
