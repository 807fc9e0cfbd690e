"""`edgepipe tune`: a budget-driven search over prune amount x prune kind x output precision.

Optuna's multi-objective study (size, p50 latency, accuracy drop; all minimized) proposes candidates; each is a
real build (converted, validated and measured through its runtime) run by an executor: this machine's worker
processes, or Ray tasks on a cluster. The Pareto front and the pick (the smallest artifact meeting every budget)
are written with a config the user can commit. Accuracy fallback happens inside each candidate: int8 outputs get
the `max-accuracy-drop` budget and keep their most sensitive layers float when needed.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from edge_pipeline.config import Config, installed_pruners
from edge_pipeline.fsutil import write_json_atomic, write_text_atomic
from edge_pipeline.precision import Precision
from edge_pipeline.types import JsonObject

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial, Trial

    from edge_pipeline.building.executors import Executor
    from edge_pipeline.report.model import Report

PRUNE_AMOUNTS = (0.0, 0.25, 0.5, 0.75)
MAX_ASKS = 4   # per requested candidate: the space is small, the sampler repeats itself


@dataclass(frozen=True)
class TuneSettings:
    target: str
    out_dir: Path
    config: Config
    trials: int = 12
    max_accuracy_drop: float | None = None
    max_size_kb: float | None = None
    max_latency_ms: float | None = None
    runs: int | None = None          # latency runs per candidate (default: the target's)
    parallel: int = 1
    seed: int = 0


@dataclass(frozen=True)
class Candidate:
    """One point of the search space; hashable, so a candidate the sampler proposes again is not rebuilt."""

    output: str                      # "format:precision"
    prune_amount: float
    prune_kind: str | None = None    # None when not pruned
    fine_tune: str | None = None     # the fine-tune callback, only when pruned

    def to_json(self) -> JsonObject:
        data: JsonObject = {"output": self.output, "prune_amount": self.prune_amount, "prune_kind": self.prune_kind}
        return {**data, "fine_tune": self.fine_tune} if self.fine_tune else data


@dataclass(frozen=True)
class TrialResult:
    """One built candidate: the measured fields mean something (and are written) only when `status` is "ok"."""

    trial: int
    candidate: Candidate
    status: str
    error: str | None = None
    size_kb: float = 0.0
    size_compressed_kb: float = 0.0
    p50_ms: float = 0.0
    accuracy: float | None = None
    accuracy_drop: float = 0.0
    params_count: int | None = None
    measured_on: str | None = None
    kept_float: tuple[str, ...] | None = None
    report: str | None = None        # the candidate's report.json

    def to_json(self) -> JsonObject:
        """tune.json's trial entry, keys in the order users and tests read them."""
        data: JsonObject = {"params": self.candidate.to_json(), "status": self.status}
        if self.status != "ok":
            return {**data, "error": self.error, "trial": self.trial}
        kept = list(self.kept_float) if self.kept_float is not None else None
        return {**data, "size_kb": self.size_kb, "size_compressed_kb": self.size_compressed_kb, "p50_ms": self.p50_ms,
                "accuracy": self.accuracy, "accuracy_drop": self.accuracy_drop, "params_count": self.params_count,
                "measured_on": self.measured_on, "kept_float": kept, "report": self.report, "trial": self.trial}


@dataclass(frozen=True)
class NearMiss:
    """A measured candidate shown when none met the budgets, with what kept it out."""

    result: TrialResult
    violations: tuple[str, ...]

    def to_json(self) -> JsonObject:
        return {**self.result.to_json(), "violations": list(self.violations)}


@dataclass(frozen=True)
class TuneSummary:
    """What a search found; `to_json()` is tune.json."""

    target: str
    budgets: Mapping[str, float | None]   # budget name -> limit (None: not set)
    trials: tuple[TrialResult, ...]
    pareto_front: tuple[TrialResult, ...]
    chosen: TrialResult | None
    closest: tuple[NearMiss, ...]
    executor: str | None = None           # where the candidates ran (the executor's label)

    def to_json(self) -> JsonObject:
        data: JsonObject = {"target": self.target, "budgets": {k: v for k, v in self.budgets.items()},
                            "trials": [r.to_json() for r in self.trials],
                            "pareto_front": [r.to_json() for r in self.pareto_front],
                            "chosen": self.chosen.to_json() if self.chosen else None,
                            "closest": [c.to_json() for c in self.closest]}
        return {**data, "executor": self.executor} if self.executor is not None else data


def search_space(settings: TuneSettings) -> list[str]:
    """Every `format:precision` the target's formats offer (directly or bridged), in Precision's search order."""
    from edge_pipeline import registry
    from edge_pipeline.building.plan import load_target
    from edge_pipeline.plugins import Exporter

    target = load_target(settings.target, settings.config)
    formats = list(dict.fromkeys(o.format for o in target.outputs))
    exporters = registry.load_all(Exporter)[0]
    return [f"{fmt}:{p.name}" for fmt in formats for p in Precision.searched_space()
            if any(e.format == fmt and p.name in e.precisions for e in exporters)]


def candidate_config(settings: TuneSettings, candidate: Candidate) -> Config:
    """The configuration one candidate builds with: one output, its pruning, the target's profile."""
    cfg = settings.config
    table: JsonObject = dict(cfg.targets.get(settings.target, {}))
    table["formats"] = [candidate.output]
    if settings.runs and isinstance(profile := table.get("profile", {}), dict):
        table["profile"] = {**profile, "runs": settings.runs, "warmup": min(5, settings.runs)}
    prune: JsonObject | None = None
    if candidate.prune_amount > 0:
        fine_tune = (cfg.source.prune or {}).get("fine_tune") or candidate.fine_tune
        prune = {"amount": candidate.prune_amount, "kind": candidate.prune_kind, "fine_tune": fine_tune}
    return replace(cfg, source=replace(cfg.source, prune=prune), targets={**cfg.targets, settings.target: table})


def evaluate(settings: TuneSettings, number: int, candidate: Candidate) -> TrialResult:
    """One real build of one candidate; runs wherever the executor puts it."""
    from edge_pipeline.building.pipeline import BuildOptions, build
    from edge_pipeline.errors import EdgepipeError

    budgets = (("max-accuracy-drop", settings.max_accuracy_drop),) if settings.max_accuracy_drop is not None else ()
    options = BuildOptions(target=settings.target, out_dir=settings.out_dir / "trials" / f"trial-{number:03d}",
                           config=candidate_config(settings, candidate), budgets=budgets)
    try:
        report = build(options)
    except EdgepipeError as exc:
        return TrialResult(number, candidate, "failed", str(exc))
    (art,) = report.artifacts
    if art.status != "ok":
        reason = (art.error.message if art.error else None) or (art.export.unvalidated_reason if art.export else None)
        return TrialResult(number, candidate, art.status or "failed", str(reason) if reason is not None else None)
    if art.size_bytes is None or art.size_compressed_bytes is None or art.p50 is None:   # an "ok" artifact has all
        return TrialResult(number, candidate, "failed", "the build reported no size or latency")
    kept = (art.fallback or {}).get("kept_float")
    return TrialResult(number, candidate, "ok", size_kb=art.size_bytes / 1024,
                       size_compressed_kb=art.size_compressed_bytes / 1024, p50_ms=art.p50,
                       accuracy=art.accuracy, accuracy_drop=art.accuracy_drop or 0.0,
                       params_count=_params_count(report), measured_on=art.measured_on,
                       kept_float=tuple(str(k) for k in kept) if isinstance(kept, list) else None,
                       report=str(Path(options.out_dir) / settings.target / "report.json"))


def _params_count(report: Report) -> int | None:
    """Parameters after pruning when the candidate was pruned, the source's otherwise."""
    pruning = report.source.extra.get("pruning")
    after = pruning.get("after") if isinstance(pruning, Mapping) else None
    count = after.get("params", report.source.params) if isinstance(after, Mapping) else report.source.params
    return count if isinstance(count, int) else None


def violations(result: TrialResult, settings: TuneSettings) -> list[str]:
    """What keeps a measured candidate from meeting the budgets (empty: it meets them)."""
    out = []
    for value, limit, name in ((result.accuracy_drop, settings.max_accuracy_drop, "accuracy drop pt"),
                               (result.size_kb, settings.max_size_kb, "size KB"),
                               (result.p50_ms, settings.max_latency_ms, "p50 ms")):
        if limit is not None and value > limit:
            out.append(f"{name} {value:.4g} > {limit:g}")
    return out


def run_search(settings: TuneSettings, executor: Executor,
               on_trial: Callable[[int, TrialResult], None]) -> TuneSummary:
    """Ask the study for candidates, build the new ones through `executor`, tell it what each measured."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    outputs = search_space(settings)
    study = optuna.create_study(directions=["minimize", "minimize", "minimize"],
                                sampler=optuna.samplers.TPESampler(seed=settings.seed, n_startup_trials=4))
    seen: dict[Candidate, TrialResult] = {}
    results: list[TrialResult] = []
    fine_tune = _example_fine_tune(settings.config)
    asked = 0
    while len(seen) < settings.trials and asked < MAX_ASKS * settings.trials:
        batch = [study.ask() for _ in range(min(settings.parallel, settings.trials - len(seen)))]
        asked += len(batch)
        candidates = [_suggest(trial, outputs, fine_tune) for trial in batch]
        fresh = list({c: (t.number, c) for t, c in zip(batch, candidates) if c not in seen}.values())
        for result in executor.map(lambda item: evaluate(settings, *item), fresh):
            seen[result.candidate] = result
            results.append(result)
            on_trial(result.trial, result)
        for trial, candidate in zip(batch, candidates):   # a repeated candidate is told its known result, not rebuilt
            if (known := seen[candidate]).status == "ok":
                study.tell(trial, [known.size_kb, known.p50_ms, known.accuracy_drop])
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
    front = sorted({seen[_candidate_of(t, fine_tune)].trial for t in study.best_trials})
    return summarize(settings, results, front, executor.label)


def _suggest(trial: Trial, outputs: list[str], fine_tune: str | None) -> Candidate:
    trial.suggest_categorical("output", outputs)
    if trial.suggest_categorical("prune_amount", PRUNE_AMOUNTS):
        trial.suggest_categorical("prune_kind", tuple(installed_pruners()))
    return _candidate_of(trial, fine_tune)


def _candidate_of(trial: Trial | FrozenTrial, fine_tune: str | None) -> Candidate:
    """The candidate a trial stands for, spelled one way whether it is being run or finished (a repeat is found)."""
    values = trial.params
    pruned = bool(values["prune_amount"])
    return Candidate(values["output"], values["prune_amount"], values.get("prune_kind") if pruned else None,
                     (fine_tune or None) if pruned else None)


def _example_fine_tune(config: Config) -> str | None:
    """The built-in examples ship a fine-tune callback; a user's model uses the one in its config, if any."""
    if config.source.model is None and (config.source.example or "torch-digits") == "torch-digits":
        return "targets.examples.torch_digits:fine_tune"
    return None


def summarize(settings: TuneSettings, results: list[TrialResult], front: list[int],
              executor: str | None = None) -> TuneSummary:
    """The front, the pick (smallest, then fastest, of those meeting every budget) or the closest misses."""
    measured = [r for r in results if r.status == "ok"]
    meeting = [r for r in measured if not violations(r, settings)]
    chosen = min(meeting, key=lambda r: (r.size_kb, r.p50_ms), default=None)
    closest = sorted(measured, key=lambda r: len(violations(r, settings)))[:3] if chosen is None else []
    budgets = {"max-accuracy-drop": settings.max_accuracy_drop, "max-size-kb": settings.max_size_kb,
               "max-latency-ms": settings.max_latency_ms}
    return TuneSummary(settings.target, budgets, tuple(results), tuple(r for r in results if r.trial in front),
                       chosen, tuple(NearMiss(r, tuple(violations(r, settings))) for r in closest), executor)


def write_results(summary: TuneSummary, settings: TuneSettings) -> Path:
    folder = settings.out_dir
    write_json_atomic(folder / "tune.json", summary.to_json())
    write_text_atomic(folder / "pareto.md", pareto_markdown(summary))
    if summary.chosen:
        write_text_atomic(folder / "edgepipe.tuned.toml", tuned_config(summary.chosen, settings))
    return folder


def pareto_markdown(summary: TuneSummary) -> str:
    lines = [f"# edgepipe tune: {summary.target}", "",
             "Pareto front (size, p50 latency, accuracy drop), every candidate built and measured for real:", "",
             "| trial | output | prune | size KB | zipped KB | p50 ms | accuracy drop pt | kept float |",
             "|---:|---|---|---:|---:|---:|---:|---|"]
    for r in sorted(summary.pareto_front, key=lambda r: r.size_kb):
        c = r.candidate
        prune = f"{c.prune_amount:g} {c.prune_kind}" if c.prune_amount else "-"
        lines.append(f"| {r.trial} | {c.output} | {prune} | {r.size_kb:.1f} | {r.size_compressed_kb:.1f} | "
                     f"{r.p50_ms:.4f} | {r.accuracy_drop:.2f} | {', '.join(r.kept_float or []) or '-'} |")
    chosen = summary.chosen
    lines += ["", f"Chosen: trial {chosen.trial} ({chosen.candidate.output}), {chosen.size_kb:.1f} KB."
              if chosen else "No candidate met the budgets."]
    if summary.trials and summary.trials[0].measured_on:
        lines += ["", f"Latency measured on: {summary.trials[0].measured_on}."]
    return "\n".join(lines) + "\n"


def tuned_config(chosen: TrialResult, settings: TuneSettings) -> str:
    """The pick as edgepipe.toml lines a user can commit (merge into their own config)."""
    c = chosen.candidate
    lines = [f"# written by `edgepipe tune --target {settings.target}`: trial {chosen.trial}, "
             f"{chosen.size_kb:.1f} KB, accuracy drop {chosen.accuracy_drop:.2f} pt"]
    if c.prune_amount:
        fine = f', fine-tune = "{c.fine_tune}"' if c.fine_tune else ""
        lines.append(f'prune = {{ amount = {c.prune_amount}, kind = "{c.prune_kind}"{fine} }}')
    lines += ["", f"[targets.{settings.target}]", f'formats = ["{c.output}"]']
    budgets = {k: v for k, v in (("max-accuracy-drop", settings.max_accuracy_drop),
                                 ("max-size-kb", settings.max_size_kb),
                                 ("max-latency-ms", settings.max_latency_ms)) if v is not None}
    if budgets:
        lines.append(f"budgets = {{ {', '.join(f'{k} = {v}' for k, v in budgets.items())} }}")
    return "\n".join(lines) + "\n"
