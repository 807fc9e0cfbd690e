"""`edgepipe gate` and `edgepipe baseline update`: CI checks on an existing report, no rebuild.

Both fail closed: the gate fails a report whose build failed or has a failed artifact (before any budget), re-checks
the budgets the build was given (a `--budget` of the same name wins) and refuses a failed report as baseline.
The checks are `edge_pipeline.api.gate` / `update_baseline`'s; these commands parse and print. Errors are not
handled here: the CLI's one handler (guard.py) turns them into a line and an exit code."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from edge_pipeline import api
from edge_pipeline.cli.render import show
from edge_pipeline.errors import EXIT_GATE_FAILED, EXIT_OK
from edge_pipeline.report.gating import parse_budget

MARKS = {True: ("✓", "green"), False: ("✗", "red")}
baseline_app = typer.Typer(help="Manage the baseline file a team commits.", no_args_is_help=True)


def gate(
    report: Annotated[Path, typer.Argument(help="report.json written by `edgepipe build`.")] = api.DEFAULT_REPORT,
    baseline: Annotated[Optional[Path], typer.Option(
        "--baseline", help="A baseline file (or another report) to compare against.")] = None,
    budget: Annotated[Optional[list[str]], typer.Option(
        "--budget", "-b", help="Absolute limit name=value (repeatable), e.g. max-size-kb=900.")] = None,
    max_size_growth: Annotated[float, typer.Option(
        help="Allowed size growth vs the baseline, percent.")] = 2.0,
    max_accuracy_loss: Annotated[float, typer.Option(
        help="Allowed accuracy loss vs the baseline, percentage points.")] = 0.3,
    max_latency_growth: Annotated[float, typer.Option(
        help="Allowed p50 latency growth vs the baseline, percent (same machine only; differences inside the "
             "measured noise pass).")] = 10.0,
    junit: Annotated[Optional[Path], typer.Option("--junit", help="Also write the checks as JUnit XML here.")] = None,
    tensorboard: Annotated[Optional[Path], typer.Option(
        "--tensorboard", metavar="DIR", help="The TensorBoard log the build was appended to (build --tensorboard): "
                                             "the verdict is added at the build's step.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Check a report against budgets and a baseline. Exit 1 when any check fails, or when the build failed."""
    from edge_pipeline.cli.guard import out_console

    budgets = dict(parse_budget(b) for b in budget or [])
    result = api.gate(report, baseline=baseline, budgets=budgets, max_size_growth=max_size_growth,
                      max_accuracy_loss=max_accuracy_loss, max_latency_growth=max_latency_growth, junit=junit,
                      tensorboard=tensorboard)
    if as_json:
        checks = [c.to_dict() for c in result.checks]
        sys.stdout.write(json.dumps({"passed": result.passed, "checks": checks}, indent=2, allow_nan=False) + "\n")
    else:
        for check in result.checks:
            mark, style = ("-", "yellow") if check.kind == "skipped" else MARKS[check.passed]
            show(out_console, check.message, mark=mark, style=style)
        out_console.print("[green]gate passed[/]" if result.passed else "[red]gate failed[/]")
    raise typer.Exit(EXIT_OK if result.passed else EXIT_GATE_FAILED)


@baseline_app.command("update")
def baseline_update(
    report: Annotated[Path, typer.Argument(help="report.json to take the baseline from.")] = api.DEFAULT_REPORT,
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Baseline file to write (commit it).")] = Path("edgepipe-baseline.json"),
) -> None:
    """Write the baseline file from a (passing) report."""
    from edge_pipeline.cli.guard import out_console

    entry = api.update_baseline(report, out=out)
    show(out_console, f"baseline for '{entry.target}' written to {out} ({len(entry.artifacts)} artifacts)")
