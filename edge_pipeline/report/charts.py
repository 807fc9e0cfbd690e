"""The charts of `report.html`, drawn with plotly from the typed report: every plotted value is the report's own
(a test reads them back from the page). Each chart is a figure with a stable id; traces carry `meta` naming the
artifact and figure they show. A chart with nothing to show is left out (the page says so)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from edge_pipeline.report.model import ArtifactReport, Report

if TYPE_CHECKING:
    import plotly.graph_objects as go

TOP_LAYERS = 20
LABEL_SPOTS = ("top center", "bottom center", "middle right", "middle left")
TOP_OPS = 8
Chart = tuple[str, str, str]     # (div id, title, explanation)


def _ok(report: Report) -> list[ArtifactReport]:
    return [a for a in report.artifacts if a.status == "ok" and a.size_bytes]


def tradeoff(report: Report) -> go.Figure | None:
    """Size (log) against accuracy (agreement where there are no labels), marker area growing with p50 latency;
    the size and accuracy budgets drawn as dashed lines."""
    import plotly.graph_objects as go

    arts = _ok(report)
    if not arts:
        return None
    labelled = all(a.accuracy is not None for a in arts)
    ys = [a.accuracy if labelled else a.agreement for a in arts]
    lats = [a.p50 or 0.0 for a in arts]
    biggest = max(lats) or 1.0
    figure = go.Figure()
    for i, (a, y, lat) in enumerate(zip(arts, ys, lats)):     # labels take turns around the marker: artifacts of
        figure.add_trace(go.Scatter(                           # one size and accuracy (tflite and pte) overlap
            x=[a.size_bytes / 1024], y=[y], mode="markers+text", text=[a.label], textposition=LABEL_SPOTS[i % 4],
            name=a.label, marker={"size": 12 + 28 * (lat / biggest) ** 0.5, "opacity": 0.75},
            meta={"artifact": a.label, "figure": "tradeoff", "p50_ms": a.p50},
            hovertemplate=f"{a.label}<br>%{{x:.1f}} KB<br>{'accuracy' if labelled else 'agreement'} %{{y:.4f}}"
                          f"<br>p50 {lat:.4g} ms<extra></extra>"))
    budgets = report.budgets
    if "max-size-kb" in budgets:
        figure.add_vline(x=budgets["max-size-kb"], line_dash="dash", annotation_text="max-size-kb")
    floor = budgets.get("min-accuracy" if labelled else "min-agreement")
    if floor is None and labelled and "max-accuracy-drop" in budgets and report.source.accuracy is not None:
        floor = report.source.accuracy - budgets["max-accuracy-drop"] / 100
    if floor is not None:
        figure.add_hline(y=floor, line_dash="dash", annotation_text="accuracy budget" if labelled else
                         "min-agreement")
    figure.update_xaxes(type="log", title="size (KB, log scale)")
    figure.update_yaxes(title="accuracy" if labelled else "top-1 agreement with the source")
    return figure


def validation(report: Report) -> go.Figure | None:
    """Per artifact and output: SQNR (dB; an exact output is not a bar, its hover says so), and top-1 agreement
    with its 95% interval for class outputs."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = [(a, o) for a in report.artifacts if a.validation for o in a.validation.outputs]
    if not rows:
        return None
    figure = make_subplots(rows=1, cols=2, subplot_titles=("SQNR dB per output", "top-1 agreement (95% interval)"))
    for output in dict.fromkeys(str(o.name) for _, o in rows):
        mine = [(a, o) for a, o in rows if str(o.name) == output]
        figure.add_trace(go.Bar(x=[a.label for a, _ in mine], y=[o.sqnr_db for _, o in mine], name=output,
                                meta={"output": output, "figure": "sqnr_db"},
                                hovertext=["exact" if o.max_abs_diff == 0.0 else f"cosine {o.cosine}"
                                           for _, o in mine]), row=1, col=1)
        classed = [(a, o) for a, o in mine if o.agreement is not None]
        if classed:
            figure.add_trace(go.Scatter(
                x=[a.label for a, _ in classed], y=[o.agreement for _, o in classed], mode="markers",
                name=f"{output} agreement", meta={"output": output, "figure": "agreement"},
                error_y=_interval([o.agreement for _, o in classed], [o.agreement_ci95 for _, o in classed])),
                row=1, col=2)
    figure.update_layout(barmode="group")
    return figure


def _interval(values: Sequence[float | None], bounds: Sequence[Sequence[float] | None]) -> dict[str, object]:
    plus = [(b[1] - v) if b and v is not None else 0.0 for v, b in zip(values, bounds)]
    minus = [(v - b[0]) if b and v is not None else 0.0 for v, b in zip(values, bounds)]
    return {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus}


def sensitivity(report: Report) -> go.Figure | None:
    """The int8 layers ranked by SQNR (the lowest first), the layers fallback kept float in red (int16: orange)."""
    import plotly.graph_objects as go

    figure, drawn = go.Figure(), False
    for a in report.artifacts:
        layers = [row for row in (a.sensitivity or {}).get("layers") or [] if isinstance(row, dict)][:TOP_LAYERS]
        if not layers:
            continue
        kept = set(map(str, (a.fallback or {}).get("kept_float") or []))
        int16 = set(map(str, (a.fallback or {}).get("kept_int16") or []))
        names = [str(row.get("layer")) for row in layers]
        figure.add_trace(go.Bar(
            x=[row.get("sqnr_db") for row in layers], y=[f"{a.label} {n}" for n in names], orientation="h",
            name=a.label, meta={"artifact": a.label, "figure": "layer_sqnr_db", "layers": names},
            marker={"color": ["#d62728" if n in kept else "#ff7f0e" if n in int16 else "#1f77b4" for n in names]}))
        drawn = True
    if not drawn:
        return None
    figure.update_xaxes(title="SQNR dB with only this layer int8 (lower: more sensitive)")
    figure.update_yaxes(autorange="reversed")
    figure.update_layout(height=max(320, 22 * sum(len(t.y) for t in figure.data)))
    return figure


def op_profile(report: Report) -> go.Figure | None:
    """Each artifact's top ops by share of the time of one call."""
    import plotly.graph_objects as go

    figure, drawn = go.Figure(), False
    for a in report.artifacts:
        profile = a.op_profile or {}
        top = [op for op in profile.get("top") or [] if isinstance(op, dict)][:TOP_OPS]
        if not top or not profile.get("timed"):
            continue
        figure.add_trace(go.Bar(
            x=[op.get("share") for op in top], y=[f"{a.label} {op.get('op')} ({op.get('name')})" for op in top],
            orientation="h", name=a.label, meta={"artifact": a.label, "figure": "op_share"},
            hovertext=[f"{op.get('avg_ms')} ms" for op in top]))
        drawn = True
    if not drawn:
        return None
    figure.update_xaxes(title="share of one call's time", tickformat=".0%")
    figure.update_yaxes(autorange="reversed")
    figure.update_layout(height=max(320, 22 * sum(len(t.y) for t in figure.data)))
    return figure


def latency(report: Report) -> go.Figure | None:
    """Per artifact and thread count: box p25-p75, median p50, whiskers p10-p90 (as measured)."""
    import plotly.graph_objects as go

    figure, drawn = go.Figure(), False
    for a in _ok(report):
        for lat in a.latency_by_threads or ((a.latency_ms,) if a.latency_ms else ()):
            if lat is None or None in (lat.p10, lat.p25, lat.p50, lat.p75, lat.p90):
                continue
            threads = lat.threads or 1
            figure.add_trace(go.Box(
                x=[a.label], q1=[lat.p25], median=[lat.p50], q3=[lat.p75], lowerfence=[lat.p10],
                upperfence=[lat.p90], name=f"{threads} thread{'s' if threads != 1 else ''}",
                legendgroup=str(threads), showlegend=False, offsetgroup=str(threads),
                meta={"artifact": a.label, "figure": "latency", "threads": threads}))
            drawn = True
    if not drawn:
        return None
    figure.update_layout(boxmode="group")
    figure.update_yaxes(title="ms per call (whiskers p10-p90)")
    return figure


def generation(report: Report) -> go.Figure | None:
    """A language model's time to first token and decode rate per artifact."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    arts = [a for a in report.artifacts if a.generation is not None]
    if not arts:
        return None
    figure = make_subplots(rows=1, cols=2, subplot_titles=("time to first token (ms)", "decode tokens/s"))
    labels = [a.label for a in arts]
    figure.add_trace(go.Bar(x=labels, y=[a.generation.ttft_ms for a in arts if a.generation], name="TTFT",
                            meta={"figure": "ttft_ms"}), row=1, col=1)
    figure.add_trace(go.Bar(x=labels, y=[a.generation.decode_tokens_per_s for a in arts if a.generation],
                            name="decode", meta={"figure": "decode_tokens_per_s"}), row=1, col=2)
    return figure


def server_load(report: Report) -> go.Figure | None:
    """Each served artifact's load test: p99 latency and throughput against the clients sending at once."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    served = [a for a in report.artifacts if a.server_load is not None and a.server_load.levels]
    if not served:
        return None
    figure = make_subplots(rows=1, cols=2, subplot_titles=("p99 ms per request", "requests per second"))
    for a in served:
        levels = a.server_load.levels if a.server_load else ()
        clients = [lv.concurrency for lv in levels]
        figure.add_trace(go.Scatter(x=clients, y=[lv.p99_ms for lv in levels], name=a.label, legendgroup=a.label,
                                    meta={"artifact": a.label, "figure": "p99_ms"}), row=1, col=1)
        figure.add_trace(go.Scatter(x=clients, y=[lv.throughput_rps for lv in levels], name=a.label,
                                    legendgroup=a.label, showlegend=False,
                                    meta={"artifact": a.label, "figure": "throughput_rps"}), row=1, col=2)
    figure.update_xaxes(title="clients at once", type="log")
    return figure


CHARTS: tuple[tuple[str, str, str, Callable[[Report], go.Figure | None]], ...] = (
    ("tradeoff", "Size, accuracy and latency",
     "Each artifact's size against its accuracy; marker area grows with p50 latency; dashed lines are budgets.",
     tradeoff),
    ("validation", "Validation per output", "Signal-to-quantization-noise ratio of each output against the source "
     "(higher is closer), and top-1 agreement with its 95% interval for class outputs.", validation),
    ("latency", "Latency per thread count", "Host-emulated, never a phone: see each artifact's measured_on.",
     latency),
    ("sensitivity", "Per-layer int8 sensitivity", "The lowest-SQNR layers first; red: kept float by fallback.",
     sensitivity),
    ("ops", "Per-op latency profile", "Each artifact's top ops by share of one call's time.", op_profile),
    ("generation", "Language model speed", "Time to first token and decode rate, as measured here.", generation),
    ("server", "Server load test", "Client-side p99 and throughput through each real server on 127.0.0.1, clients "
     "and server sharing this host's cores.", server_load),
)
