"""`report.html`: one static, offline file (inline SVG, no scripts from anywhere) rendered from report.json:
a size / accuracy / latency Pareto view, the latency distribution of every artifact, and the tables."""
from __future__ import annotations

import html
import math
from collections.abc import Callable

from edge_pipeline.report.model import ArtifactReport, Report

WIDTH, HEIGHT, PAD = 640, 320, 56
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]


def _ok(report: Report) -> list[ArtifactReport]:
    return [a for a in report.artifacts if a.status == "ok" and a.size_bytes]


def _scale(lo: float, hi: float, a: float, b: float) -> Callable[[float], float]:
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def pareto_svg(report: Report) -> str:
    """x: size (KB, log), y: accuracy; circle area grows with p50 latency; front points are outlined."""
    arts = _ok(report)
    if not arts:
        return "<p>No validated artifacts.</p>"
    sizes = [math.log10((a.size_bytes or 0) / 1024) for a in arts]
    accs = [a.accuracy if a.accuracy is not None else a.agreement or 0 for a in arts]
    lats = [a.p50 or 0 for a in arts]
    x = _scale(min(sizes) - 0.1, max(sizes) + 0.1, PAD, WIDTH - PAD)
    y = _scale(min(accs) - 0.005, max(accs) + 0.005, HEIGHT - PAD, PAD / 2)
    points = list(zip(sizes, accs, lats))
    front = {i for i, (s, acc, lat) in enumerate(points) if not any(
        s2 <= s and acc2 >= acc and lat2 <= lat and (s2, acc2, lat2) != (s, acc, lat) for s2, acc2, lat2 in points)}
    biggest = max(lats) or 1.0
    parts = [_axes("size (KB, log scale)", "accuracy (or agreement)")]
    for i, a in enumerate(arts):
        r = 5 + 12 * math.sqrt(lats[i] / biggest)
        stroke = ' stroke="#000" stroke-width="2"' if i in front else ""
        label = html.escape(a.label)
        parts.append(f'<circle class="point" cx="{x(sizes[i]):.1f}" cy="{y(accs[i]):.1f}" r="{r:.1f}" '
                     f'fill="{COLORS[i % len(COLORS)]}" fill-opacity="0.7"{stroke}><title>{label}: '
                     f'{(a.size_bytes or 0) / 1024:.1f} KB, accuracy {accs[i]:.4f}, p50 {lats[i]:.4g} ms</title>'
                     f'</circle>')
        parts.append(f'<text x="{x(sizes[i]) + r + 2:.1f}" y="{y(accs[i]) + 4:.1f}" font-size="11">{label}</text>')
    for value in sorted(set(round(v, 1) for v in sizes)):
        parts.append(f'<text x="{x(value):.1f}" y="{HEIGHT - PAD + 16}" font-size="10" '
                     f'text-anchor="middle">{10 ** value:.0f}</text>')
    return _svg("pareto", parts)


def latency_svg(report: Report) -> str:
    """A box per artifact: whiskers p10-p90, box p25-p75, line at the median (1 thread)."""
    boxes = [(a, a.latency_ms) for a in _ok(report) if a.latency_ms is not None and a.latency_ms.p25 is not None]
    if not boxes:
        return "<p>No latency measured.</p>"
    hi = max(lat.p90 or 0.0 for _, lat in boxes) * 1.1
    y = _scale(0, hi, HEIGHT - PAD, PAD / 2)
    step = (WIDTH - 2 * PAD) / len(boxes)
    parts = [_axes("artifact", "latency ms (1 thread)")]
    for i, (a, lat) in enumerate(boxes):
        cx, color, label = PAD + step * (i + 0.5), COLORS[i % len(COLORS)], html.escape(a.label)
        p10, p25, p50, p75, p90 = (v or 0.0 for v in (lat.p10, lat.p25, lat.p50, lat.p75, lat.p90))
        parts += [f'<line x1="{cx}" x2="{cx}" y1="{y(p10):.1f}" y2="{y(p90):.1f}" stroke="{color}"/>',
                  f'<rect class="box" x="{cx - step / 4:.1f}" y="{y(p75):.1f}" width="{step / 2:.1f}" '
                  f'height="{max(1.0, y(p25) - y(p75)):.1f}" fill="{color}" fill-opacity="0.4" stroke="{color}">'
                  f'<title>{label}: p10 {p10:.4g}, p50 {p50:.4g}, p90 {p90:.4g} ms</title></rect>',
                  f'<line x1="{cx - step / 4:.1f}" x2="{cx + step / 4:.1f}" y1="{y(p50):.1f}" y2="{y(p50):.1f}" '
                  f'stroke="#000"/>',
                  f'<text x="{cx:.1f}" y="{HEIGHT - PAD + 16}" font-size="10" text-anchor="middle">{label}</text>']
    for tick in (0, hi / 2, hi):
        parts.append(f'<text x="{PAD - 6}" y="{y(tick) + 3:.1f}" font-size="10" text-anchor="end">{tick:.3g}</text>')
    return _svg("latency", parts)


def _axes(xlabel: str, ylabel: str) -> str:
    return (f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#444"/>'
            f'<line x1="{PAD}" y1="{PAD / 2}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#444"/>'
            f'<text x="{WIDTH / 2}" y="{HEIGHT - 12}" font-size="12" text-anchor="middle">{xlabel}</text>'
            f'<text x="14" y="{HEIGHT / 2}" font-size="12" transform="rotate(-90 14 {HEIGHT / 2})" '
            f'text-anchor="middle">{ylabel}</text>')


def _svg(name: str, parts: list[str]) -> str:
    return (f'<svg id="{name}-plot" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img">' + "".join(parts) + "</svg>")


def to_html(report: Report) -> str:
    verdict = "PASSED" if report.passed else "FAILED"
    target = html.escape(str(report.target))
    rows = "".join(
        f"<tr><td>{html.escape(a.label)}</td><td>{a.status}</td><td>{_n(a.size_bytes, 1024, 1)}</td>"
        f"<td>{_n(a.size_compressed_bytes, 1024, 1)}</td><td>{_n(a.p50, 1, 4)}</td>"
        f"<td>{_n(a.accuracy, 0.01, 2)}</td><td>{_n(a.agreement, 1, 4)}</td>"
        f"<td>{html.escape(str(a.measured_on or (a.error.message if a.error else None) or ''))}</td></tr>"
        for a in report.artifacts)
    fidelity = "".join(
        f"<tr><td>{html.escape(a.label)}</td><td>{html.escape(str(o.name))}</td><td>{html.escape(_shown(o.shape))}</td>"
        f"<td>{'exact' if o.max_abs_diff == 0.0 else _n(o.sqnr_db, 1, 1)}</td><td>{_n(o.cosine, 1, 6)}</td>"
        f"<td>{_n(o.max_abs_diff, 1, 4)}</td><td>{_n(o.agreement, 1, 4)}</td>"
        f"<td class=\"{'ok' if o.passed else 'fail'}\">{'ok' if o.passed else 'refused'}</td></tr>"
        for a in report.artifacts for o in (a.validation.outputs if a.validation else ()))
    language = "".join(
        f"<tr><td>{html.escape(a.label)}</td><td>{_n(g.token_agreement, 1, 4)}</td><td>{_n(g.perplexity, 1, 2)} "
        f"({_n(g.source_perplexity, 1, 2)})</td><td>{_n(g.perplexity_increase_pct, 1, 2)}</td>"
        f"<td>{html.escape(', '.join('-' if d is None else str(d) for d in g.first_divergence))}</td>"
        f"<td>{_n(g.ttft_ms, 1, 3)}</td><td>{_n(g.prefill_tokens_per_s, 1, 0)}</td>"
        f"<td>{_n(g.decode_tokens_per_s, 1, 0)}</td><td>{html.escape(str(g.measured_on or ''))}</td></tr>"
        for a in report.artifacts if (g := a.generation) is not None)
    checks = "".join(f"<li class=\"{'ok' if c.passed else 'fail'}\">{html.escape(c.message)}</li>"
                     for c in report.checks)
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in report.warnings)
    source = report.source
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgepipe {target}: {verdict}</title>
<link rel="icon" href="data:,">
<style>body{{font-family:system-ui,sans-serif;margin:2rem;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}}td:first-child,td:last-child{{text-align:left}}
.fail{{color:#b00}}.ok{{color:#060}}svg{{border:1px solid #eee;margin:.5rem 0}}</style></head>
<body><h1>edgepipe build: {target} <span class="{'ok' if report.passed else 'fail'}">{verdict}</span></h1>
<p>Source: {html.escape(str(source.framework))}, {source.params or 0:,} parameters,
accuracy {_n(source.accuracy, 0.01, 2)}%. Latency was measured on this host (see each row), not on a device.</p>
<h2>Size vs accuracy vs latency</h2><p>Circle area grows with p50 latency; outlined points are on the Pareto front.</p>
{pareto_svg(report)}
<h2>Latency distribution</h2>{latency_svg(report)}
<h2>Artifacts</h2><table><tr><th>artifact</th><th>status</th><th>KB</th><th>zipped KB</th><th>p50 ms</th>
<th>accuracy %</th><th>agreement</th><th>measured on / error</th></tr>{rows}</table>
{LANGUAGE_HEADER + language + '</table>' if language else ''}
<h2>Validation per output</h2><table><tr><th>artifact</th><th>output</th><th>shape</th><th>SQNR dB</th>
<th>cosine</th><th>max abs diff</th><th>top-1 agreement</th><th>verdict</th></tr>{fidelity}</table>
<h2>Checks</h2><ul>{checks or '<li>No budgets configured.</li>'}</ul>
{f'<h2>Worth a look</h2><ul>{warnings}</ul>' if warnings else ''}
<h2>Per-layer sensitivity and per-op time</h2><p>Not measured in this build.</p>
</body></html>
"""


LANGUAGE_HEADER = ("<h2>Language model</h2><table><tr><th>artifact</th><th>token agreement</th><th>ppl (source)</th>"
                   "<th>ppl +%</th><th>first divergence per prompt</th><th>TTFT ms</th><th>prefill tok/s</th>"
                   "<th>decode tok/s</th><th>measured on</th></tr>")


def _shown(value: object) -> str:
    """A value as report.json shows it (a tuple as a list)."""
    return str(list(value)) if isinstance(value, tuple) else str(value)


def _n(value: float | None, divisor: float, digits: int) -> str:
    return "-" if value is None else f"{value / divisor:.{digits}f}"
