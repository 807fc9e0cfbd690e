"""Terminal views: live stage progress and the final table (stderr for progress, stdout for results).

The one place text reaches a terminal: every line goes through `show` and every cell through `cell`, which
build Rich `Text` (never parsed as markup) from `printable` text. A path like `ci[/x]/out`, an error naming
`[/data/model.onnx]` or a converter's coloured log is shown as written, never as markup or escape codes."""
from __future__ import annotations

from types import TracebackType

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from edge_pipeline.progress import Phase, ProgressEvent
from edge_pipeline.report.model import ArtifactReport, Report
from edge_pipeline.text import printable
from edge_pipeline.types import TEXT_GENERATION

PHASE_STYLE = {Phase.DONE: "green", Phase.FAILED: "red", Phase.START: "cyan", Phase.SKIPPED: "yellow"}
PHASE_MARK = {Phase.DONE: "✓", Phase.SKIPPED: "-", Phase.FAILED: "✗"}
STATUS_STYLE = {"ok": "green", "failed": "red", "unvalidated": "yellow"}
COLUMNS = ("artifact", "status", "size KB", "zipped KB", "p50 ms", "p90 ms", "accuracy", "drop pt", "agreement")
# A language model's figures in two tables, each within an 80-column terminal: does it still say the same,
# and what does an app feel
MEANING_COLUMNS = ("artifact", "status", "ppl +%", "token agreement", "greedy = source")
LOAD_COLUMNS = ("artifact", "clients", "requests", "errors", "p50 ms", "p99 ms", "req/s", "server MB")
SPEED_COLUMNS = ("artifact", "size KB", "TTFT ms", "prefill tok/s", "decode tok/s")


class StageProgress:
    """A build's progress callback: one line per stage that ends; a spinner shows while a stage runs."""

    def __init__(self, console: Console):
        self.console = console
        self.status = console.status("starting", spinner="dots")

    def __enter__(self) -> "StageProgress":
        self.status.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.status.__exit__(kind, error, traceback)

    def __call__(self, event: ProgressEvent) -> None:
        cached = " (cached)" if event.cached else ""
        if event.phase == Phase.START:
            self.status.update(cell(f"{event.stage}{cached} ..."))
            return
        extra = f": {event.message}" if event.message else cached
        show(self.console, f"{event.stage}{extra}", mark=PHASE_MARK.get(event.phase, "✗"),
             style=PHASE_STYLE.get(event.phase, "white"))


def show(console: Console, text: object, *, mark: str = "", style: str | None = None, whole: bool = False) -> None:
    """Prints one line: `mark` (and with `whole`, the text too) in `style`; the text shown literally."""
    line = Text()
    if mark:
        line.append(f"{mark} ", style=style)
    line.append(printable(text), style=style if whole or not mark else None)
    console.print(line, highlight=False, soft_wrap=True)


def cell(text: object, style: str | None = None) -> Text:
    """A table cell or status text, shown literally."""
    return Text(printable(text), style=style or "")


def report_table(report: Report) -> Table | Group:
    table = Table(title=cell(f"edgepipe {report.target}: {'PASSED' if report.passed else 'FAILED'}"))
    if report.source.task == TEXT_GENERATION:
        return _language_tables(table, report)
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in ("artifact", "status") else "right")
    for a in report.artifacts:
        lat = a.latency_ms
        table.add_row(cell(a.label), cell(a.status, STATUS_STYLE.get(a.status or "", "red")),
                      _f(a.size_bytes, 1024, 1), _f(a.size_compressed_bytes, 1024, 1),
                      _f(lat.p50 if lat else None, 1, 3), _f(lat.p90 if lat else None, 1, 3),
                      _f(a.accuracy, 0.01, 2), _f(a.accuracy_drop, 1, 2), _f(a.agreement, 1, 4))
    served = [a for a in report.artifacts if a.server_load is not None]
    return Group(table, _load_table(served)) if served else table


def _load_table(served: list[ArtifactReport]) -> Table:
    """Served artifacts under load (client side, loopback): one row per concurrency level."""
    table = Table(title=cell("load test on 127.0.0.1 (this host)"))
    for column in LOAD_COLUMNS:
        table.add_column(column, justify="left" if column == "artifact" else "right", no_wrap=column == "artifact")
    for a in served:
        load = a.server_load
        for index, level in enumerate(load.levels if load else ()):
            table.add_row(cell(a.label if index == 0 else ""), str(level.concurrency), str(level.requests),
                          str(level.errors), _f(level.p50_ms, 1, 1), _f(level.p99_ms, 1, 1),
                          _f(level.throughput_rps, 1, 0),
                          _f(load.peak_memory_mb if load and index == 0 else None, 1, 0))
    return table


def _language_tables(meaning: Table, report: Report) -> Group:
    """A language model's artifacts: whether each still says the same, then what an app feels (TTFT, tokens/s)."""
    speed = Table()
    for table, columns in ((meaning, MEANING_COLUMNS), (speed, SPEED_COLUMNS)):
        for column in columns:
            table.add_column(column, justify="left" if column in ("artifact", "status") else "right",
                             no_wrap=column == "artifact")
    for a in report.artifacts:
        g = a.generation
        same = None if g is None or not g.first_divergence else sum(d is None for d in g.first_divergence)
        meaning.add_row(cell(a.label), cell(a.status, STATUS_STYLE.get(a.status or "", "red")),
                        _f(g.perplexity_increase_pct if g else None, 1, 2), _f(g.token_agreement if g else None, 1, 4),
                        cell("-" if same is None or g is None else f"{same}/{len(g.first_divergence)} prompts"))
        speed.add_row(cell(a.label), _f(a.size_bytes, 1024, 1), _f(g.ttft_ms if g else None, 1, 2),
                      _f(g.prefill_tokens_per_s if g else None, 1, 0), _f(g.decode_tokens_per_s if g else None, 1, 0))
    return Group(meaning, speed)


def _f(value: float | None, divisor: float, digits: int) -> str:
    return "-" if value is None else f"{value / divisor:.{digits}f}"
