"""`edgepipe history`: how each artifact's size, latency and accuracy moved across a series of build reports,
as a table, as JSON and as a self-contained HTML chart (plotly, its JavaScript embedded: no network request).

Reports are read strictly (`load_report`). Files are taken in the order given; a folder stands for the
report.json files up to two levels below it (a CI archive of `<commit>/<target>/report.json`), oldest first.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge_pipeline.errors import ConfigError
from edge_pipeline.report.baseline import Baseline, load_report
from edge_pipeline.report.model import ArtifactReport, Report
from edge_pipeline.types import JsonObject

MAX_REPORTS = 1000
FIGURES = ("size_kb", "p50_ms", "accuracy", "agreement")
TITLES = {"size_kb": "size (KB)", "p50_ms": "p50 latency, 1 thread (ms)", "accuracy": "accuracy",
          "agreement": "top-1 agreement with the source"}


@dataclass(frozen=True)
class Point:
    """One artifact in one report: its figures (None where not measured)."""

    build: int
    status: str
    size_kb: float | None
    p50_ms: float | None
    accuracy: float | None
    agreement: float | None

    def to_json(self) -> JsonObject:
        return {"build": self.build, "status": self.status, "size_kb": self.size_kb, "p50_ms": self.p50_ms,
                "accuracy": self.accuracy, "agreement": self.agreement}


@dataclass(frozen=True)
class History:
    """The reports in order (their paths and commits) and each artifact's points across them."""

    reports: tuple[Path, ...]
    commits: tuple[str | None, ...]
    series: dict[str, tuple[Point, ...]]

    def to_json(self) -> JsonObject:
        return {"reports": [{"build": i, "path": str(p), "commit": c}
                            for i, (p, c) in enumerate(zip(self.reports, self.commits))],
                "artifacts": {label: [p.to_json() for p in points] for label, points in self.series.items()}}


def find_reports(paths: Sequence[Path]) -> list[Path]:
    """The report files `paths` stand for, in order (a folder: its reports oldest first); bounded."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = [p for pattern in ("report.json", "*/report.json", "*/*/report.json")
                      for p in path.glob(pattern) if p.is_file() and not p.is_symlink()]
            if not inside:
                raise ConfigError(f"no report.json in {path} or the two folder levels below it")
            found += sorted(inside, key=lambda p: (os.stat(p).st_mtime_ns, str(p)))
        else:
            found.append(path)
        if len(found) > MAX_REPORTS:
            raise ConfigError(f"more than {MAX_REPORTS} reports: give fewer (or a narrower folder)")
    if not found:
        raise ConfigError("give at least one report.json or a folder holding reports")
    return found


def load_history(paths: Sequence[Path]) -> History:
    reports: list[Report] = []
    files = find_reports(paths)
    for path in files:
        loaded = load_report(path)
        if isinstance(loaded, Baseline):
            raise ConfigError(f"report {path} is a baseline file, not a build report")
        reports.append(loaded)
    series: dict[str, list[Point]] = {}
    for build, report in enumerate(reports):
        for artifact in report.artifacts:
            series.setdefault(artifact.label, []).append(_point(build, artifact))
    commits = tuple(_commit(r) for r in reports)
    return History(tuple(files), commits, {label: tuple(points) for label, points in series.items()})


def _commit(report: Report) -> str | None:
    return report.history.commit if report.history is not None else None


def _point(build: int, a: ArtifactReport) -> Point:
    single = next((lat for lat in a.latency_by_threads if lat.threads == 1), a.latency_ms)
    return Point(build, str(a.status or "unknown"), a.size_bytes / 1024 if a.size_bytes is not None else None,
                 single.p50 if single is not None else None, a.accuracy, a.agreement)


def change(points: Sequence[Point], figure: str) -> float | None:
    """Last minus first measured value of `figure` (None with fewer than two)."""
    values = [getattr(p, figure) for p in points if getattr(p, figure) is not None]
    return values[-1] - values[0] if len(values) >= 2 else None


def to_html(history: History, title: str = "edgepipe history") -> str:
    """One chart per figure, one line per artifact, x = the build's number; plotly's JavaScript inline."""
    import plotly.colors
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=len(FIGURES), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                           subplot_titles=[TITLES[f] for f in FIGURES])
    labels = [f"{i}: {c[:10] if c else p.parent.name}" for i, (p, c) in
              enumerate(zip(history.reports, history.commits))]
    palette = plotly.colors.qualitative.Plotly
    for index, (label, points) in enumerate(history.series.items()):
        color = palette[index % len(palette)]          # one color per artifact in every chart
        for row, name in enumerate(FIGURES, start=1):
            xs = [p.build for p in points if getattr(p, name) is not None]
            ys = [getattr(p, name) for p in points if getattr(p, name) is not None]
            figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=label, legendgroup=label,
                                        showlegend=row == 1, hovertext=[labels[x] for x in xs],
                                        line={"color": color}, marker={"color": color},
                                        meta={"artifact": label, "figure": name}), row=row, col=1)
    figure.update_xaxes(tickmode="array", tickvals=list(range(len(labels))), ticktext=labels, row=len(FIGURES))
    figure.update_layout(title=title, height=260 * len(FIGURES), template="plotly_white")
    return figure.to_html(include_plotlyjs=True, full_html=True, div_id="edgepipe-history")
