"""`edgepipe tune`: search prune x precision for the smallest artifact that meets the budgets."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from edge_pipeline.errors import EXIT_GATE_FAILED, EXIT_OK


def tune(
    target: Annotated[str, typer.Option("--target", "-t", help="Target profile whose formats are searched.")] = "android",
    max_accuracy_drop: Annotated[Optional[float], typer.Option("--max-accuracy-drop", help="Budget: top-1 drop vs the float source, percentage points (int8 candidates fall back to float layers to meet it).")] = None,
    max_size_kb: Annotated[Optional[float], typer.Option("--max-size-kb", help="Budget: artifact size in KB.")] = None,
    max_latency_ms: Annotated[Optional[float], typer.Option("--max-latency-ms", help="Budget: p50 latency in ms, as measured for the target.")] = None,
    trials: Annotated[int, typer.Option("--trials", min=1, help="Candidates to build and measure.")] = 12,
    executor: Annotated[str, typer.Option("--executor", help="'local' (worker processes here) or 'ray'.")] = "local",
    address: Annotated[Optional[str], typer.Option("--address", help="With --executor ray: the cluster address (default: start a local Ray).")] = None,
    parallel: Annotated[int, typer.Option("--parallel", min=1, help="Candidates in flight at once.")] = 1,
    runs: Annotated[Optional[int], typer.Option("--runs", min=1, help="Latency runs per candidate (default: the target's).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Results go to OUT/tune/<target>/.")] = Path("build/edgepipe"),
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="edgepipe.toml or pyproject.toml to read.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the search (Optuna TPE sampler).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Build and measure candidates (prune amount x kind x precision, with int8 fallback) chosen by an Optuna
    multi-objective study; write the Pareto front and the smallest artifact meeting the budgets as a config.

    Exit 0 with a pick, 1 when no candidate meets the budgets (the closest are shown), 2/3 on bad input or setup.
    """
    from edge_pipeline.building.executors import make_executor
    from edge_pipeline.building.plan import load_target
    from edge_pipeline.building.tune import TuneSettings, run_search, write_results
    from edge_pipeline.cli.guard import err_console, out_console, watch_output
    from edge_pipeline.config import load_config
    from edge_pipeline.paths import output_folder, plain_name

    output_folder(out)
    cfg = load_config(config)
    load_target(target, cfg)   # unknown targets fail before anything starts
    watch_output(out / "tune" / plain_name(target, "--target"))
    settings = TuneSettings(target=target, out_dir=out / "tune" / target, config=cfg, trials=trials,
                            max_accuracy_drop=max_accuracy_drop, max_size_kb=max_size_kb,
                            max_latency_ms=max_latency_ms, runs=runs, parallel=parallel, seed=seed)
    pool = make_executor(executor, address, parallel)
    err_console.print(f"tuning {target}: {trials} candidates on {pool.label}")
    try:
        done = []
        with err_console.status("searching ...") as status:
            def on_trial(number: int, result: dict) -> None:
                done.append(number)
                p = result["params"]
                what = f"{p['output']}, prune {p['prune_amount']:g} {p['prune_kind'] or ''}".strip()
                detail = (f"{result['size_kb']:.1f} KB, {result['p50_ms']:.4f} ms, drop {result['accuracy_drop']:.2f} pt"
                          if result["status"] == "ok" else f"failed: {result['error']}")
                err_console.print(f"  trial {number}: {what}: {detail}")
                status.update(f"searching ... {len(done)}/{trials} candidates measured")

            summary = {**run_search(settings, pool, on_trial), "executor": pool.label}
    finally:
        pool.close()
    folder = write_results(summary, settings)
    if as_json:
        out_console.print_json(json.dumps(summary, default=str))
    else:
        out_console.print((folder / "pareto.md").read_text())
        if summary["chosen"]:
            out_console.print(f"Config to commit: {folder / 'edgepipe.tuned.toml'}")
        else:
            for r in summary["closest"]:
                out_console.print(f"closest: trial {r['trial']} {r['params']['output']}: {'; '.join(r['violations'])}")
    raise typer.Exit(EXIT_OK if summary["chosen"] else EXIT_GATE_FAILED)
