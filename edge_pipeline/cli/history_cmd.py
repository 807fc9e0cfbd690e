"""`edgepipe history`: each artifact's size, latency and accuracy across a series of build reports, printed as a
table (or JSON) and, with --html, plotted into a self-contained page. The work is `edge_pipeline.api.history`."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from edge_pipeline import api
from edge_pipeline.report.history import FIGURES, History, change


def history(
    reports: Annotated[list[Path], typer.Argument(
        help="report.json files, oldest first, or folders holding them (report.json up to two levels down, "
             "taken oldest first).", show_default=False)],
    html: Annotated[Optional[Path], typer.Option(
        "--html", help="Also write the trend charts here (one self-contained HTML file, no network needed).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the series as JSON.")] = False,
) -> None:
    """Show how each artifact's size, latency and accuracy moved across build reports."""
    from edge_pipeline.cli.guard import out_console

    found = api.history(reports, html=html)
    if as_json:
        sys.stdout.write(json.dumps(found.to_json(), indent=2, allow_nan=False) + "\n")
        return
    out_console.print(_table(found))
    if html is not None:
        out_console.print(f"Charts: {html}")


def _table(found: History) -> object:
    from rich.table import Table

    table = Table(title=f"edgepipe history: {len(found.reports)} report(s)")
    for column in ("artifact", "build", "commit", "status", "size KB", "p50 ms (1 thread)", "accuracy",
                   "agreement"):
        table.add_column(column, justify="left" if column in ("artifact", "commit", "status") else "right")
    for label, points in found.series.items():
        for point in points:
            commit = found.commits[point.build]
            table.add_row(label, str(point.build), commit[:10] if commit else "-", point.status,
                          *(_cell(getattr(point, f)) for f in FIGURES))
        if len(points) > 1:
            table.add_row(label, "change", "", "", *(_cell(change(points, f), signed=True) for f in FIGURES),
                          style="bold")
    return table


def _cell(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.4g}" if signed else f"{value:.4g}"
