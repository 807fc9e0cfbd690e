"""`edgepipe tune`: search prune x precision for the smallest artifact that meets the budgets
(`edge_pipeline.api.tune`; this command parses and prints)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from edge_pipeline.errors import EXIT_GATE_FAILED, EXIT_OK

if TYPE_CHECKING:
    from edge_pipeline.building.tune import TrialResult


def tune(
    target: Annotated[str, typer.Option(
        "--target", "-t", help="Target profile whose formats are searched.")] = "android",
    max_accuracy_drop: Annotated[Optional[float], typer.Option(
        "--max-accuracy-drop", help="Budget: top-1 drop vs the float source, percentage points (int8 candidates "
                                    "fall back to float layers to meet it).")] = None,
    max_size_kb: Annotated[Optional[float], typer.Option("--max-size-kb", help="Budget: artifact size in KB.")] = None,
    max_latency_ms: Annotated[Optional[float], typer.Option(
        "--max-latency-ms", help="Budget: p50 latency in ms, as measured for the target.")] = None,
    trials: Annotated[int, typer.Option("--trials", min=1, help="Candidates to build and measure.")] = 12,
    executor: Annotated[str, typer.Option(
        "--executor", help="'local' (worker processes here) or 'ray'.")] = "local",
    address: Annotated[Optional[str], typer.Option(
        "--address", help="With --executor ray: the cluster address (default: start a local Ray).")] = None,
    parallel: Annotated[int, typer.Option("--parallel", min=1, help="Candidates in flight at once.")] = 1,
    runs: Annotated[Optional[int], typer.Option(
        "--runs", min=1, help="Latency runs per candidate (default: the target's).")] = None,
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Results go to OUT/tune/<target>/.")] = Path("build/edgepipe"),
    config: Annotated[Optional[Path], typer.Option(
        "--config", "-c", help="edgepipe.toml or pyproject.toml to read.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the search (Optuna TPE sampler).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Build and measure candidates (prune amount x kind x precision, with int8 fallback) chosen by an Optuna
    multi-objective study; write the Pareto front and the smallest artifact meeting the budgets as a config.

    Exit 0 with a pick, 1 when no candidate meets the budgets (the closest are shown), 2/3 on bad input or setup.
    """
    from edge_pipeline import api
    from edge_pipeline.cli.guard import err_console, out_console, watch_output
    from edge_pipeline.cli.render import cell, show

    watch_output(out / "tune" / target)
    done: list[int] = []
    with err_console.status("searching ...") as status:
        def on_trial(number: int, result: TrialResult) -> None:
            done.append(number)
            show(err_console, f"  trial {number}: {_trial_line(result)}")
            status.update(f"searching ... {len(done)}/{trials} candidates measured")

        outcome = api.tune(target, out_dir=out, config=config, max_accuracy_drop=max_accuracy_drop,
                           max_size_kb=max_size_kb, max_latency_ms=max_latency_ms, trials=trials, executor=executor,
                           address=address, parallel=parallel, runs=runs, seed=seed,
                           on_start=lambda label: show(err_console, f"tuning {target}: {trials} candidates on {label}"),
                           on_trial=on_trial)
    summary = outcome.summary
    if as_json:
        out_console.print_json(json.dumps(summary.to_json(), default=str))
    else:
        out_console.print(cell((outcome.folder / "pareto.md").read_text()))
        if outcome.chosen:
            show(out_console, f"Config to commit: {outcome.folder / 'edgepipe.tuned.toml'}")
        else:
            for near in summary.closest:
                show(out_console, f"closest: trial {near.result.trial} {near.result.candidate.output}: "
                                  f"{'; '.join(near.violations)}")
    raise typer.Exit(EXIT_OK if outcome.chosen else EXIT_GATE_FAILED)


def _trial_line(result: TrialResult) -> str:
    """One measured candidate: what it was and what it measured (or why it failed)."""
    c = result.candidate
    what = f"{c.output}, prune {c.prune_amount:g} {c.prune_kind or ''}".strip()
    if result.status != "ok":
        return f"{what}: failed: {result.error}"
    return f"{what}: {result.size_kb:.1f} KB, {result.p50_ms:.4f} ms, drop {result.accuracy_drop:.2f} pt"
