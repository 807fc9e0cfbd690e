"""Terminal views: live stage progress and the final table (stderr for progress, stdout for results)."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from edge_pipeline.report.model import Report

STATE_STYLE = {"done": "green", "failed": "red", "start": "cyan", "skipped": "yellow"}
STATUS_STYLE = {"ok": "green", "failed": "red", "unvalidated": "yellow"}


class StageProgress:
    """Prints one line per stage transition; a spinner shows while a stage runs."""

    def __init__(self, console: Console):
        self.console = console
        self.status = console.status("starting", spinner="dots")

    def __enter__(self) -> "StageProgress":
        self.status.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.status.__exit__(*exc)

    def __call__(self, label: str, state: str, details: dict[str, Any]) -> None:
        if state == "start":
            self.status.update(f"{label}{' (cached)' if details.get('cached') else ''} ...")
            return
        extra = " (cached)" if details.get("cached") else ""
        if details.get("error") or details.get("reason"):
            extra = f": {details.get('error') or details['reason']}"
        mark = {"done": "✓", "skipped": "-"}.get(state, "✗")
        self.console.print(f"[{STATE_STYLE.get(state, 'white')}]{mark}[/] {label}{extra}")


def report_table(report: Report) -> Table:
    table = Table(title=f"edgepipe {report.target}: {'PASSED' if report.passed else 'FAILED'}")
    for column in ("artifact", "status", "size KB", "zipped KB", "p50 ms", "p90 ms", "accuracy", "drop pt", "agreement"):
        table.add_column(column, justify="left" if column in ("artifact", "status") else "right")
    for a in report.artifacts:
        lat = a.latency_ms
        table.add_row(a.label, f"[{STATUS_STYLE.get(a.status, 'red')}]{a.status}[/]",
                      _f(a.size_bytes, 1024, 1), _f(a.size_compressed_bytes, 1024, 1),
                      _f(lat.p50 if lat else None, 1, 3), _f(lat.p90 if lat else None, 1, 3), _f(a.accuracy, 0.01, 2),
                      _f(a.accuracy_drop, 1, 2), _f(a.agreement, 1, 4))
    return table


def _f(value: float | None, divisor: float, digits: int) -> str:
    return "-" if value is None else f"{value / divisor:.{digits}f}"
