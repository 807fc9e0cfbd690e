"""`edgepipe gate` and `edgepipe baseline update`: CI checks on an existing report, no rebuild.

Both fail closed: the gate fails a report whose build failed or has a failed artifact (before any budget), re-checks
the budgets the build was given (a `--budget` of the same name wins) and refuses a failed report as baseline.
Errors are not handled here: the CLI's one handler (guard.py) turns them into a line and an exit code."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from edge_pipeline.errors import EXIT_GATE_FAILED, EXIT_OK, ConfigError
from edge_pipeline.fsutil import write_json_atomic, write_text_atomic
from edge_pipeline.paths import output_file
from edge_pipeline.report.baseline import (
    BASELINE_KIND,
    RelativeLimits,
    compare,
    load_report,
    make_baseline,
    refuse_unless_passed,
)
from edge_pipeline.report.gating import check_budgets, completeness_checks, parse_budget
from edge_pipeline.report.junit import to_junit
from edge_pipeline.report.model import Report

baseline_app = typer.Typer(help="Manage the baseline file a team commits.", no_args_is_help=True)
DEFAULT_REPORT = Path("build/edgepipe/android/report.json")


def gate(
    report: Annotated[Path, typer.Argument(help="report.json written by `edgepipe build`.")] = DEFAULT_REPORT,
    baseline: Annotated[Optional[Path], typer.Option("--baseline", help="A baseline file (or another report) to compare against.")] = None,
    budget: Annotated[Optional[list[str]], typer.Option("--budget", "-b", help="Absolute limit name=value (repeatable), e.g. max-size-kb=900.")] = None,
    max_size_growth: Annotated[float, typer.Option(help="Allowed size growth vs the baseline, percent.")] = 2.0,
    max_accuracy_loss: Annotated[float, typer.Option(help="Allowed accuracy loss vs the baseline, percentage points.")] = 0.3,
    max_latency_growth: Annotated[float, typer.Option(help="Allowed p50 latency growth vs the baseline, percent (same machine only; differences inside the measured noise pass).")] = 10.0,
    junit: Annotated[Optional[Path], typer.Option("--junit", help="Also write the checks as JUnit XML here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Check a report against budgets and a baseline. Exit 1 when any check fails, or when the build failed."""
    from edge_pipeline.cli.guard import out_console

    if junit is not None:
        output_file(junit, "--junit")
    loaded = load_report(report)      # checked; version 2 or 3
    if loaded.get("kind") == BASELINE_KIND:
        raise ConfigError(f"{report} is a baseline, not a build report: pass it as --baseline")
    current = Report.from_json(loaded)
    budgets = {**current.budgets, **dict(parse_budget(b) for b in budget or [])}
    checks = completeness_checks(current) + check_budgets(budgets, current.artifacts)
    if baseline is not None:
        limits = RelativeLimits(max_size_growth, max_accuracy_loss, max_latency_growth)
        checks += compare(current, load_report(baseline, "baseline"), limits)
    failed = [c for c in checks if not c.passed]
    if junit is not None:
        write_text_atomic(junit, to_junit(current, checks))
    if as_json:
        sys.stdout.write(json.dumps({"passed": not failed, "checks": [c.to_dict() for c in checks]}, indent=2) + "\n")
    else:
        for check in checks:
            mark = "[yellow]-[/]" if check.kind == "skipped" else "[green]✓[/]" if check.passed else "[red]✗[/]"
            out_console.print(f"{mark} {check.message}", highlight=False)
        out_console.print("[red]gate failed[/]" if failed else "[green]gate passed[/]")
    raise typer.Exit(EXIT_GATE_FAILED if failed else EXIT_OK)


@baseline_app.command("update")
def baseline_update(
    report: Annotated[Path, typer.Argument(help="report.json to take the baseline from.")] = DEFAULT_REPORT,
    out: Annotated[Path, typer.Option("--out", "-o", help="Baseline file to write (commit it).")] = Path("edgepipe-baseline.json"),
) -> None:
    """Write the baseline file from a (passing) report."""
    from edge_pipeline.cli.guard import out_console

    output_file(out, "--out")
    current = load_report(report)
    refuse_unless_passed(current, str(report))
    entry = make_baseline(current)
    write_json_atomic(out, entry)
    out_console.print(f"baseline for '{entry['target']}' written to {out} ({len(entry['artifacts'])} artifacts)")
