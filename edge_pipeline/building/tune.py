"""`edgepipe tune`: a budget-driven search over prune amount x prune kind x output precision.

Optuna's multi-objective study (size, p50 latency, accuracy drop; all minimized) proposes candidates; each is a
real build (converted, validated and measured through its runtime) run by an executor: this machine's worker
processes, or Ray tasks on a cluster. The Pareto front and the pick (the smallest artifact meeting every budget)
are written with a config the user can commit. Accuracy fallback happens inside each candidate: int8 outputs get
the `max-accuracy-drop` budget and keep their most sensitive layers float when needed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from edge_pipeline.config import PRUNE_KINDS, Config
from edge_pipeline.fsutil import write_json_atomic, write_text_atomic
from edge_pipeline.precision import Precision

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


def search_space(settings: TuneSettings) -> list[str]:
    """Every `format:precision` the target's formats offer (directly or through a bridge), precisions in
    Precision's search order."""
    from edge_pipeline import registry
    from edge_pipeline.building.plan import load_target

    target = load_target(settings.target, settings.config)
    formats = list(dict.fromkeys(o.format for o in target.outputs))
    exporters = registry.load_all("exporter")[0]
    return [f"{fmt}:{p.name}" for fmt in formats for p in Precision.searched_space()
            if any(e.format == fmt and p.name in e.precisions for e in exporters)]


def candidate_config(settings: TuneSettings, params: dict[str, Any]) -> Config:
    """The configuration one candidate builds with: one output, its pruning, the target's profile."""
    cfg = settings.config
    table = dict(cfg.targets.get(settings.target, {}))
    table["formats"] = [params["output"]]
    if settings.runs:
        table["profile"] = {**table.get("profile", {}), "runs": settings.runs, "warmup": min(5, settings.runs)}
    prune = None
    if params["prune_amount"] > 0:
        fine_tune = (cfg.source.prune or {}).get("fine_tune") or params.get("fine_tune")
        prune = {"amount": params["prune_amount"], "kind": params["prune_kind"], "fine_tune": fine_tune}
    return replace(cfg, source=replace(cfg.source, prune=prune), targets={**cfg.targets, settings.target: table})


def evaluate(settings: TuneSettings, number: int, params: dict[str, Any]) -> dict[str, Any]:
    """One real build of one candidate; runs wherever the executor puts it."""
    from edge_pipeline.building.pipeline import BuildOptions, build
    from edge_pipeline.errors import EdgepipeError

    budgets = (("max-accuracy-drop", settings.max_accuracy_drop),) if settings.max_accuracy_drop is not None else ()
    options = BuildOptions(target=settings.target, out_dir=settings.out_dir / "trials" / f"trial-{number:03d}",
                           config=candidate_config(settings, params), budgets=budgets)
    try:
        report = build(options)
    except EdgepipeError as exc:
        return {"params": params, "status": "failed", "error": str(exc)}
    (art,) = report.artifacts
    if art.status != "ok":
        reason = (art.error or {}).get("message") or (art.export or {}).get("unvalidated_reason")
        return {"params": params, "status": art.status, "error": reason}
    pruning = report.source.extra.get("pruning") or {}
    return {"params": params, "status": "ok", "size_kb": art.size_bytes / 1024,
            "size_compressed_kb": art.size_compressed_bytes / 1024, "p50_ms": art.latency_ms.p50,
            "accuracy": art.accuracy, "accuracy_drop": art.accuracy_drop or 0.0,
            "params_count": (pruning.get("after") or {}).get("params", report.source.params),
            "measured_on": art.measured_on, "kept_float": (art.fallback or {}).get("kept_float"),
            "report": str(Path(options.out_dir) / settings.target / "report.json")}


def violations(result: dict[str, Any], settings: TuneSettings) -> list[str]:
    """What keeps a measured candidate from meeting the budgets (empty: it meets them)."""
    out = []
    for key, limit, name in (("accuracy_drop", settings.max_accuracy_drop, "accuracy drop pt"),
                             ("size_kb", settings.max_size_kb, "size KB"), ("p50_ms", settings.max_latency_ms, "p50 ms")):
        if limit is not None and result[key] > limit:
            out.append(f"{name} {result[key]:.4g} > {limit:g}")
    return out


def run_search(settings: TuneSettings, executor: Any, on_trial: Callable[[int, dict[str, Any]], None]) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    outputs = search_space(settings)
    study = optuna.create_study(directions=["minimize", "minimize", "minimize"],
                                sampler=optuna.samplers.TPESampler(seed=settings.seed, n_startup_trials=4))
    seen: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    fine_tune = _example_fine_tune(settings.config)
    asked = 0
    while len(seen) < settings.trials and asked < MAX_ASKS * settings.trials:
        batch = [study.ask() for _ in range(min(settings.parallel, settings.trials - len(seen)))]
        asked += len(batch)
        params = [_suggest(trial, outputs, fine_tune) for trial in batch]
        fresh = list({_key(p): (t.number, p) for t, p in zip(batch, params) if _key(p) not in seen}.values())
        for (number, p), result in zip(fresh, executor.map(lambda item: evaluate(settings, *item), fresh)):
            seen[_key(p)] = {**result, "trial": number}
            results.append(seen[_key(p)])
            on_trial(number, seen[_key(p)])
        for trial, p in zip(batch, params):   # a repeated candidate is told its known result, not rebuilt
            result = seen[_key(p)]
            if result["status"] == "ok":
                study.tell(trial, [result["size_kb"], result["p50_ms"], result["accuracy_drop"]])
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
    front = sorted({seen[_key(p)]["trial"] for p in (_params_of(t, fine_tune) for t in study.best_trials)})
    return summarize(settings, results, front)


def _suggest(trial: Any, outputs: list[str], fine_tune: str | None) -> dict[str, Any]:
    params = {"output": trial.suggest_categorical("output", outputs),
              "prune_amount": trial.suggest_categorical("prune_amount", PRUNE_AMOUNTS)}
    params["prune_kind"] = trial.suggest_categorical("prune_kind", PRUNE_KINDS) if params["prune_amount"] else None
    if fine_tune and params["prune_amount"]:
        params["fine_tune"] = fine_tune
    return params


def _params_of(trial: Any, fine_tune: str | None) -> dict[str, Any]:
    """The candidate a finished trial stood for (its sampled values, as _suggest built them)."""
    params = {"output": trial.params["output"], "prune_amount": trial.params["prune_amount"]}
    params["prune_kind"] = trial.params.get("prune_kind") if params["prune_amount"] else None
    if fine_tune and params["prune_amount"]:
        params["fine_tune"] = fine_tune
    return params


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def _example_fine_tune(config: Config) -> str | None:
    """The built-in examples ship a fine-tune callback; a user's model uses the one in its config, if any."""
    if config.source.model is None and (config.source.example or "torch-digits") == "torch-digits":
        return "targets.examples.torch_digits:fine_tune"
    return None


def summarize(settings: TuneSettings, results: list[dict[str, Any]], front: list[int]) -> dict[str, Any]:
    measured = [r for r in results if r["status"] == "ok"]
    meeting = [r for r in measured if not violations(r, settings)]
    chosen = min(meeting, key=lambda r: (r["size_kb"], r["p50_ms"]), default=None)
    closest = sorted(measured, key=lambda r: len(violations(r, settings)))[:3] if chosen is None else []
    return {"target": settings.target, "budgets": {"max-accuracy-drop": settings.max_accuracy_drop,
                                                   "max-size-kb": settings.max_size_kb,
                                                   "max-latency-ms": settings.max_latency_ms},
            "trials": results, "pareto_front": [r for r in results if r["trial"] in front],
            "chosen": chosen, "closest": [{**r, "violations": violations(r, settings)} for r in closest]}


def write_results(summary: dict[str, Any], settings: TuneSettings) -> Path:
    folder = settings.out_dir
    write_json_atomic(folder / "tune.json", summary)
    write_text_atomic(folder / "pareto.md", pareto_markdown(summary))
    if summary["chosen"]:
        write_text_atomic(folder / "edgepipe.tuned.toml", tuned_config(summary["chosen"], settings))
    return folder


def pareto_markdown(summary: dict[str, Any]) -> str:
    lines = [f"# edgepipe tune: {summary['target']}", "",
             "Pareto front (size, p50 latency, accuracy drop), every candidate built and measured for real:", "",
             "| trial | output | prune | size KB | zipped KB | p50 ms | accuracy drop pt | kept float |",
             "|---:|---|---|---:|---:|---:|---:|---|"]
    for r in sorted(summary["pareto_front"], key=lambda r: r["size_kb"]):
        p = r["params"]
        prune = f"{p['prune_amount']:g} {p['prune_kind']}" if p["prune_amount"] else "-"
        lines.append(f"| {r['trial']} | {p['output']} | {prune} | {r['size_kb']:.1f} | {r['size_compressed_kb']:.1f} | "
                     f"{r['p50_ms']:.4f} | {r['accuracy_drop']:.2f} | {', '.join(r['kept_float'] or []) or '-'} |")
    chosen = summary["chosen"]
    lines += ["", f"Chosen: trial {chosen['trial']} ({chosen['params']['output']}), {chosen['size_kb']:.1f} KB."
              if chosen else "No candidate met the budgets."]
    if summary["trials"] and summary["trials"][0].get("measured_on"):
        lines += ["", f"Latency measured on: {summary['trials'][0]['measured_on']}."]
    return "\n".join(lines) + "\n"


def tuned_config(chosen: dict[str, Any], settings: TuneSettings) -> str:
    """The pick as edgepipe.toml lines a user can commit (merge into their own config)."""
    p = chosen["params"]
    lines = [f"# written by `edgepipe tune --target {settings.target}`: trial {chosen['trial']}, "
             f"{chosen['size_kb']:.1f} KB, accuracy drop {chosen['accuracy_drop']:.2f} pt"]
    if p["prune_amount"]:
        fine = f', fine-tune = "{p["fine_tune"]}"' if p.get("fine_tune") else ""
        lines.append(f'prune = {{ amount = {p["prune_amount"]}, kind = "{p["prune_kind"]}"{fine} }}')
    lines += ["", f"[targets.{settings.target}]", f'formats = ["{p["output"]}"]']
    budgets = {k: v for k, v in (("max-accuracy-drop", settings.max_accuracy_drop), ("max-size-kb", settings.max_size_kb),
                                 ("max-latency-ms", settings.max_latency_ms)) if v is not None}
    if budgets:
        lines.append(f"budgets = {{ {', '.join(f'{k} = {v}' for k, v in budgets.items())} }}")
    return "\n".join(lines) + "\n"
