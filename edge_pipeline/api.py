"""The Python API: every `edgepipe` command as a function that returns typed results and raises EdgepipeError.

The CLI is a thin client of it: it parses arguments, renders progress and results, and maps errors to exit
codes; everything a command decides (config overrides, budget checks, the device check) happens here. Importing
this module imports no ML framework: each stage imports its framework when it runs.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from edge_pipeline.config import Config, check_memory_mb, check_prune, check_sensitivity, load_config
from edge_pipeline.errors import ConfigError
from edge_pipeline.fsutil import write_json_atomic, write_text_atomic
from edge_pipeline.host import applied
from edge_pipeline.paths import output_file, output_folder, plain_name
from edge_pipeline.progress import Progress, no_progress
from edge_pipeline.report.baseline import (
    Baseline,
    RelativeLimits,
    compare,
    load_report,
    make_baseline,
    refuse_unless_passed,
)
from edge_pipeline.report.gating import check_budgets, completeness_checks, validate_budget
from edge_pipeline.report.model import Check, Report
from edge_pipeline.types import JsonObject, ProfileSettings

if TYPE_CHECKING:
    from edge_pipeline.building.bundle import BundleSummary
    from edge_pipeline.building.tune import TrialResult, TuneSummary
    from edge_pipeline.explorer.server import RunningExplorer
    from edge_pipeline.registry import PluginInfo
    from edge_pipeline.report.history import History

__all__ = ["DEFAULT_REPORT", "GateResult", "TargetInfo", "TuneOutcome", "build", "bundle", "explore", "gate", "history",
           "plugins", "profile", "targets", "tune", "update_baseline"]
PathLike = str | Path
DEFAULT_REPORT = Path("build/edgepipe/android/report.json")


@dataclass(frozen=True)
class GateResult:
    """`gate`'s verdict: the report it read and every check, budgets and baseline comparisons included."""

    report: Report
    checks: tuple[Check, ...]

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    @property
    def passed(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class TuneOutcome:
    """`tune`'s summary (also OUT/tune/<target>/tune.json) and the folder its files went to."""

    summary: TuneSummary
    folder: Path

    @property
    def chosen(self) -> bool:
        return self.summary.chosen is not None


def build(target: str = "android", *, out_dir: PathLike = "build/edgepipe", config: PathLike | Config | None = None,
          example: str | None = None, prune: float | None = None, prune_structured: bool = False,
          fine_tune: str | None = None, prune_scope: str | None = None, sensitivity: str | None = None,
          use_cache: bool = True, budgets: Mapping[str, float] | None = None, device: str | None = None,
          log_file: PathLike | None = None, progress: Progress = no_progress, max_memory_mb: float | None = None,
          tensorboard: PathLike | None = None) -> Report:
    """Builds, validates and profiles every artifact `target` asks for; writes OUT_DIR/<target>/ and returns the
    report. `config`: a Config, or an edgepipe.toml / pyproject.toml (default: discovered in the current folder).
    `example`, `prune*`, `sensitivity` and `budgets` override the config (`prune`: the fraction of weights
    removed; `sensitivity`: on-failure | always | never). `device`: measure on a board (ssh://user@host).
    `max_memory_mb`: the budget declared sizes are held to (see Config.limits). `tensorboard`: a log folder the
    build's figures are appended to as the next step (over `[report] tensorboard`)."""
    from edge_pipeline.building.pipeline import BuildOptions
    from edge_pipeline.building.pipeline import build as run_build
    from edge_pipeline.report.tensorboard import check_history

    out = output_folder(Path(out_dir))
    cfg = _loaded(config)
    limits = cfg.limits(check_memory_mb(max_memory_mb, "--max-memory"))
    if example is not None:
        cfg = replace(cfg, source=replace(cfg.source, example=example, model=None))
    if prune is not None or prune_structured or fine_tune or prune_scope:
        table = _prune_table(cfg, prune, prune_structured, fine_tune, prune_scope)
        cfg = replace(cfg, source=replace(cfg.source, prune=check_prune(table, "--prune")))
    if sensitivity is not None:
        mode = check_sensitivity(sensitivity, "--sensitivity (quantization.sensitivity)")
        cfg = replace(cfg, quantization=cfg.quantization.with_sensitivity(mode))
    checked = _checked_budgets(budgets)
    _check_device_runs_builds(device)
    if tensorboard is not None:
        cfg = replace(cfg, tensorboard=str(Path(tensorboard).absolute()))
    if cfg.tensorboard:
        check_history(Path(cfg.tensorboard), target, "tensorboard folder (--tensorboard / [report] tensorboard)")
    options = BuildOptions(target=plain_name(target, "--target"), out_dir=out, config=cfg, use_cache=use_cache,
                           budgets=tuple(checked.items()), device=device,
                           log_file=Path(log_file) if log_file is not None else None)
    with applied(limits):    # reaches the workers through their environment
        return run_build(options, progress)


def profile(artifact: PathLike, *, target: str = "host", out_dir: PathLike = "build/edgepipe/profile",
            inputs: PathLike | None = None, reference: PathLike | None = None, runs: int = 100, warmup: int = 10,
            budgets: Mapping[str, float] | None = None, device: str | None = None,
            max_memory_mb: float | None = None) -> Report:
    """Profiles an existing artifact in its own runtime (a vendor's file included) and returns the report,
    also written to OUT_DIR/<artifact name>/. `inputs`: an .npz; `reference`: another artifact to compare with.
    `max_memory_mb`: the budget its declared inputs and `inputs` are held to (see Config.limits)."""
    from edge_pipeline.building.plan import load_target
    from edge_pipeline.building.profile import profile as run_profile

    if runs < 1 or warmup < 0:
        raise ConfigError(f"runs must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    out = output_folder(Path(out_dir))
    cfg = load_config(None)
    limits = cfg.limits(check_memory_mb(max_memory_mb, "--max-memory"))
    threads = load_target(target, cfg).profile.threads if target != "host" else (1, 0)
    settings = ProfileSettings(warmup=warmup, runs=runs, threads=threads)
    with applied(limits):
        return run_profile(Path(artifact), target, out, _path(inputs), _path(reference), settings,
                           _checked_budgets(budgets), device)


def bundle(target: str = "android", *, out_dir: PathLike = "build/edgepipe", template: str | None = None,
           name: str | None = None) -> BundleSummary:
    """Fills a sample_apps/ template (default: the target's) with a build's validated artifacts; writes
    OUT_DIR/<target>/bundle/ and <name>.zip next to it."""
    from edge_pipeline.building.bundle import make_bundle
    from edge_pipeline.building.plan import load_target

    folder = Path(out_dir) / plain_name(target, "--target")
    report = _build_report(folder / "report.json", "build report")
    if report.target != target:
        raise ConfigError(f"{folder / 'report.json'} is a build of '{report.target}', not '{target}'")
    chosen = template or load_target(target, load_config(None)).bundle_for(report.source.task)
    if chosen is None:
        raise ConfigError(f"target '{target}' has no bundle template yet; pass --template (see sample_apps/)")
    return make_bundle(chosen, folder, report, name)


def gate(report: PathLike | Report = DEFAULT_REPORT, *, baseline: PathLike | Report | Baseline | None = None,
         budgets: Mapping[str, float] | None = None, max_size_growth: float = 2.0, max_accuracy_loss: float = 0.3,
         max_latency_growth: float = 10.0, junit: PathLike | None = None, tensorboard: PathLike | None = None
         ) -> GateResult:
    """Checks a report (a report.json or a Report) against budgets (the build's own, `budgets` winning) and,
    with `baseline`, against a baseline file or another report. Fails closed: a failed build or artifact fails.
    `max_*`: allowed growth vs the baseline (percent; accuracy: percentage points). `junit`: also write XML.
    `tensorboard`: the log folder the build was appended to; the verdict is added at its step."""
    from edge_pipeline.report.tensorboard import append_gate

    junit_path = output_file(Path(junit), "--junit") if junit is not None else None
    board = Path(tensorboard).absolute() if tensorboard is not None else None
    current = _build_report(Path(report), "report") if isinstance(report, (str, Path)) else report
    limits = {**current.budgets, **_checked_budgets(budgets)}
    checks = completeness_checks(current) + check_budgets(limits, current.artifacts)
    if baseline is not None:
        base = load_report(Path(baseline), "baseline") if isinstance(baseline, (str, Path)) else baseline
        checks += compare(current, base, RelativeLimits(max_size_growth, max_accuracy_loss, max_latency_growth))
    if board is not None:      # first: a log with no build refuses before any file is written
        append_gate(current, checks, board)
    if junit_path is not None:
        from edge_pipeline.report.junit import to_junit

        write_text_atomic(junit_path, to_junit(current, checks))
    return GateResult(current, tuple(checks))


def update_baseline(report: PathLike | Report = DEFAULT_REPORT, *,
                    out: PathLike = "edgepipe-baseline.json") -> Baseline:
    """Writes the baseline file a team commits from a passing report (or another baseline) and returns it."""
    out_path = output_file(Path(out), "--out")
    current = load_report(Path(report)) if isinstance(report, (str, Path)) else report
    refuse_unless_passed(current, str(report) if isinstance(report, (str, Path)) else "the report")
    entry = make_baseline(current)
    write_json_atomic(out_path, entry.to_json())
    return entry


def tune(target: str = "android", *, out_dir: PathLike = "build/edgepipe", config: PathLike | Config | None = None,
         max_accuracy_drop: float | None = None, max_size_kb: float | None = None,
         max_latency_ms: float | None = None, trials: int = 12, executor: str = "local", address: str | None = None,
         parallel: int = 1, runs: int | None = None, seed: int = 0,
         on_start: Callable[[str], None] = lambda executor: None,
         on_trial: Callable[[int, TrialResult], None] = lambda number, result: None) -> TuneOutcome:
    """Builds and measures `trials` candidates (prune amount x kind x precision) chosen by an Optuna study; writes
    the Pareto front and the smallest artifact meeting the budgets as a config under OUT_DIR/tune/<target>/.
    `executor`: "local" (worker processes) or "ray" (`address`: the cluster). `on_start` gets the executor's
    label, `on_trial` each measured candidate."""
    from edge_pipeline.building.executors import make_executor
    from edge_pipeline.building.plan import load_target
    from edge_pipeline.building.tune import TuneSettings, run_search, write_results

    if trials < 1 or parallel < 1 or (runs is not None and runs < 1):
        raise ConfigError(f"trials, parallel and runs must be >= 1, got {trials}, {parallel}, {runs}")
    out = output_folder(Path(out_dir))
    cfg = _loaded(config)
    load_target(target, cfg)   # unknown targets fail before anything starts
    settings = TuneSettings(target=target, out_dir=out / "tune" / plain_name(target, "--target"), config=cfg,
                            trials=trials, max_accuracy_drop=max_accuracy_drop, max_size_kb=max_size_kb,
                            max_latency_ms=max_latency_ms, runs=runs, parallel=parallel, seed=seed)
    with applied(cfg.limits()):       # the memory budget and sample caps reach every trial's workers
        pool = make_executor(executor, address, parallel)
        on_start(pool.label)
        try:
            summary = run_search(settings, pool, on_trial)
        finally:
            pool.close()
    return TuneOutcome(summary, write_results(summary, settings))


def _loaded(config: PathLike | Config | None) -> Config:
    return config if isinstance(config, Config) else load_config(_path(config))


def _path(value: PathLike | None) -> Path | None:
    return Path(value) if value is not None else None


def _checked_budgets(budgets: Mapping[str, float] | None) -> dict[str, float]:
    """Budget name -> limit, each checked (an unknown name suggests the closest)."""
    for name, value in (budgets or {}).items():
        validate_budget(name, value, f"budgets.{name}")
    return {name: float(value) for name, value in (budgets or {}).items()}


def _check_device_runs_builds(device: str | None) -> None:
    """A build measures through runners: its device's transport must run them (a malformed URL: ConfigError)."""
    if device is None:
        return
    from edge_pipeline import registry

    if not registry.transport_for(device).runs_runners():
        raise ConfigError(f"--device '{device}': the {registry.url_scheme(device)} transport cannot run a build's "
                          f"artifacts; measure a file on it with `edgepipe profile`")


def _prune_table(cfg: Config, amount: float | None, structured: bool, fine_tune: str | None,
                 scope: str | None) -> JsonObject:
    """The `prune` flags over the file's `prune` table, as a table check_prune reads; a flag without an amount
    needs one from the file."""
    current = cfg.source.prune or {}
    table: JsonObject = {"amount": amount if amount is not None else current.get("amount"),
                         "kind": "structured" if structured else current.get("kind", "unstructured"),
                         "scope": scope or current.get("scope", "global")}
    if fine_tune or current.get("fine_tune"):
        table["fine-tune"] = fine_tune or current["fine_tune"]
    if table["amount"] is None:
        raise ConfigError("--prune-structured, --prune-scope and --fine-tune need --prune AMOUNT "
                          "(or prune.amount in the config)")
    return table


def _build_report(path: Path, what: str) -> Report:
    """A checked build report file; a baseline given in its place is a usage error."""
    loaded = load_report(path, what)
    if isinstance(loaded, Baseline):
        raise ConfigError(f"{path} is a baseline, not a build report: pass it as --baseline")
    return loaded


@dataclass(frozen=True)
class TargetInfo:
    """A target profile as `edgepipe targets` lists it: what it builds, what measures it, its budgets."""

    name: str
    description: str
    outputs: tuple[str, ...]
    runners: tuple[str, ...]
    threads: tuple[int | str, ...]     # "all" for every core of the device
    memory_mb: float | None
    budgets: Mapping[str, float]
    bundle: str | None
    device_class: str
    task_outputs: Mapping[str, tuple[str, ...]]   # what it builds for a task with outputs of its own (text-generation)


def plugins() -> list["PluginInfo"]:
    """Every registered plugin of every kind that loads and meets its contract (plugin modules import no
    framework). The list's `warnings` name each plugin left out: broken (why, and its distribution) or hidden by
    a same-named built-in."""
    from edge_pipeline import registry

    return registry.survey()


def targets(config: PathLike | Config | None = None) -> list[TargetInfo]:
    """The built-in target profiles and the config's own, with the file's settings applied. A target plugin that
    does not load is left out, not fatal: the list's `warnings` name it (and any hidden by a clash)."""
    from edge_pipeline import registry
    from edge_pipeline.building.plan import load_target, runners_for, target_names
    from edge_pipeline.errors import MissingDependency, PluginError

    cfg = _loaded(config)
    found: registry.Listing[TargetInfo] = registry.Listing(warnings=registry.hidden("target"))
    for name in target_names(cfg):
        try:
            t = load_target(name, cfg)
        except (MissingDependency, PluginError) as exc:
            found.warnings.append(registry.skipped("target", name, exc))
            continue
        found.append(TargetInfo(t.name, t.description, tuple(o.label for o in t.outputs), tuple(runners_for(t)),
                                tuple("all" if n == 0 else n for n in t.profile.threads), t.profile.memory_mb,
                                dict(t.budgets), t.bundle, t.device_class,
                                {task: tuple(o.label for o in outputs) for task, outputs in t.task_outputs}))
    return found


def explore(report: PathLike = DEFAULT_REPORT, *, artifact: str | None = None, port: int = 8080,
            no_open: bool = False) -> RunningExplorer:
    """Model Explorer on one artifact of a build, with its overlays, served on 127.0.0.1:`port` (0: any free
    port) in a background thread; a browser tab opens unless `no_open`. `report`: a report.json, or the build
    folder holding it; `artifact`: "format:precision" (default: the first quantized one Model Explorer reads).
    Everything is checked before the server starts; use the result as a context manager, or `.wait()`."""
    import webbrowser

    from edge_pipeline.explorer.checks import prepare
    from edge_pipeline.explorer.server import start

    path = Path(report)
    path = path / "report.json" if path.is_dir() else path
    running = start(prepare(_build_report(path, "report"), path.parent, artifact), port)
    if not no_open:
        webbrowser.open_new_tab(running.url)
    return running


def history(reports: list[PathLike], *, html: PathLike | None = None) -> History:
    """Each artifact's figures across `reports` (report.json files in order, or folders of them, oldest first);
    `html`: also written there as a self-contained chart page."""
    from edge_pipeline.report.history import load_history, to_html

    dest = output_file(Path(html), "--html") if html is not None else None
    found = load_history([Path(p) for p in reports])
    if dest is not None:
        write_text_atomic(dest, to_html(found))
    return found
