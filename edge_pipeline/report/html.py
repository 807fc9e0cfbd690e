"""`report.html`: one static, offline file (inline SVG, no scripts from anywhere) rendered from report.json:
a size / accuracy / latency Pareto view, the latency distribution of every artifact, and the tables."""
from __future__ import annotations

import html
import math
from typing import Any

from edge_pipeline.report.model import Report

WIDTH, HEIGHT, PAD = 640, 320, 56
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]


def _ok(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in report["artifacts"] if a.get("status") == "ok" and a.get("size_bytes")]


def _label(a: dict[str, Any]) -> str:
    return f"{a['format']}:{a['precision']}"


def _scale(lo: float, hi: float, a: float, b: float):
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def pareto_svg(report: dict[str, Any]) -> str:
    """x: size (KB, log), y: accuracy; circle area grows with p50 latency; front points are outlined."""
    arts = _ok(report)
    if not arts:
        return "<p>No validated artifacts.</p>"
    sizes = [math.log10(a["size_bytes"] / 1024) for a in arts]
    accs = [a.get("accuracy") if a.get("accuracy") is not None else a.get("agreement") or 0 for a in arts]
    lats = [(a.get("latency_ms") or {}).get("p50") or 0 for a in arts]
    x = _scale(min(sizes) - 0.1, max(sizes) + 0.1, PAD, WIDTH - PAD)
    y = _scale(min(accs) - 0.005, max(accs) + 0.005, HEIGHT - PAD, PAD / 2)
    front = {i for i in range(len(arts)) if not any(
        sizes[j] <= sizes[i] and accs[j] >= accs[i] and lats[j] <= lats[i] and (sizes[j], accs[j], lats[j]) != (sizes[i], accs[i], lats[i])
        for j in range(len(arts)))}
    biggest = max(lats) or 1.0
    parts = [_axes("size (KB, log scale)", "accuracy (or agreement)")]
    for i, a in enumerate(arts):
        r = 5 + 12 * math.sqrt(lats[i] / biggest)
        stroke = ' stroke="#000" stroke-width="2"' if i in front else ""
        parts.append(f'<circle class="point" cx="{x(sizes[i]):.1f}" cy="{y(accs[i]):.1f}" r="{r:.1f}" '
                     f'fill="{COLORS[i % len(COLORS)]}" fill-opacity="0.7"{stroke}><title>{html.escape(_label(a))}: '
                     f'{a["size_bytes"] / 1024:.1f} KB, accuracy {accs[i]:.4f}, p50 {lats[i]:.4g} ms</title></circle>')
        parts.append(f'<text x="{x(sizes[i]) + r + 2:.1f}" y="{y(accs[i]) + 4:.1f}" font-size="11">{html.escape(_label(a))}</text>')
    for value in sorted(set(round(v, 1) for v in sizes)):
        parts.append(f'<text x="{x(value):.1f}" y="{HEIGHT - PAD + 16}" font-size="10" text-anchor="middle">{10 ** value:.0f}</text>')
    return _svg("pareto", parts)


def latency_svg(report: dict[str, Any]) -> str:
    """A box per artifact: whiskers p10-p90, box p25-p75, line at the median (1 thread)."""
    arts = [a for a in _ok(report) if (a.get("latency_ms") or {}).get("p25") is not None]
    if not arts:
        return "<p>No latency measured.</p>"
    hi = max(a["latency_ms"]["p90"] for a in arts) * 1.1
    y = _scale(0, hi, HEIGHT - PAD, PAD / 2)
    step = (WIDTH - 2 * PAD) / len(arts)
    parts = [_axes("artifact", "latency ms (1 thread)")]
    for i, a in enumerate(arts):
        lat, cx, color = a["latency_ms"], PAD + step * (i + 0.5), COLORS[i % len(COLORS)]
        parts += [f'<line x1="{cx}" x2="{cx}" y1="{y(lat["p10"]):.1f}" y2="{y(lat["p90"]):.1f}" stroke="{color}"/>',
                  f'<rect class="box" x="{cx - step / 4:.1f}" y="{y(lat["p75"]):.1f}" width="{step / 2:.1f}" '
                  f'height="{max(1.0, y(lat["p25"]) - y(lat["p75"])):.1f}" fill="{color}" fill-opacity="0.4" stroke="{color}">'
                  f'<title>{html.escape(_label(a))}: p10 {lat["p10"]:.4g}, p50 {lat["p50"]:.4g}, p90 {lat["p90"]:.4g} ms</title></rect>',
                  f'<line x1="{cx - step / 4:.1f}" x2="{cx + step / 4:.1f}" y1="{y(lat["p50"]):.1f}" y2="{y(lat["p50"]):.1f}" stroke="#000"/>',
                  f'<text x="{cx:.1f}" y="{HEIGHT - PAD + 16}" font-size="10" text-anchor="middle">{html.escape(_label(a))}</text>']
    for tick in (0, hi / 2, hi):
        parts.append(f'<text x="{PAD - 6}" y="{y(tick) + 3:.1f}" font-size="10" text-anchor="end">{tick:.3g}</text>')
    return _svg("latency", parts)


def _axes(xlabel: str, ylabel: str) -> str:
    return (f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#444"/>'
            f'<line x1="{PAD}" y1="{PAD / 2}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#444"/>'
            f'<text x="{WIDTH / 2}" y="{HEIGHT - 12}" font-size="12" text-anchor="middle">{xlabel}</text>'
            f'<text x="14" y="{HEIGHT / 2}" font-size="12" transform="rotate(-90 14 {HEIGHT / 2})" text-anchor="middle">{ylabel}</text>')


def _svg(name: str, parts: list[str]) -> str:
    return (f'<svg id="{name}-plot" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img">' + "".join(parts) + "</svg>")


def to_html(typed: Report) -> str:
    report = typed.to_json()
    verdict = "PASSED" if report["passed"] else "FAILED"
    rows = "".join(
        f"<tr><td>{html.escape(_label(a))}</td><td>{a['status']}</td><td>{_n(a.get('size_bytes'), 1024, 1)}</td>"
        f"<td>{_n(a.get('size_compressed_bytes'), 1024, 1)}</td><td>{_n((a.get('latency_ms') or {}).get('p50'), 1, 4)}</td>"
        f"<td>{_n(a.get('accuracy'), 0.01, 2)}</td><td>{_n(a.get('agreement'), 1, 4)}</td>"
        f"<td>{html.escape(a.get('measured_on') or (a.get('error') or {}).get('message', ''))}</td></tr>"
        for a in report["artifacts"])
    fidelity = "".join(
        f"<tr><td>{html.escape(_label(a))}</td><td>{html.escape(o['name'])}</td><td>{html.escape(str(o.get('shape')))}</td>"
        f"<td>{'exact' if o.get('max_abs_diff') == 0.0 else _n(o.get('sqnr_db'), 1, 1)}</td><td>{_n(o.get('cosine'), 1, 6)}</td>"
        f"<td>{_n(o.get('max_abs_diff'), 1, 4)}</td><td>{_n(o.get('agreement'), 1, 4)}</td>"
        f"<td class=\"{'ok' if o.get('passed') else 'fail'}\">{'ok' if o.get('passed') else 'refused'}</td></tr>"
        for a in report["artifacts"] for o in ((a.get("validation") or {}).get("outputs") or []))
    checks = "".join(f"<li class=\"{'ok' if c['passed'] else 'fail'}\">{html.escape(c['message'])}</li>"
                     for c in report.get("checks", []))
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in report.get("warnings", []))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgepipe {html.escape(report['target'])}: {verdict}</title>
<link rel="icon" href="data:,">
<style>body{{font-family:system-ui,sans-serif;margin:2rem;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}}td:first-child,td:last-child{{text-align:left}}
.fail{{color:#b00}}.ok{{color:#060}}svg{{border:1px solid #eee;margin:.5rem 0}}</style></head>
<body><h1>edgepipe build: {html.escape(report['target'])} <span class="{'ok' if report['passed'] else 'fail'}">{verdict}</span></h1>
<p>Source: {html.escape(str(report['source'].get('framework')))}, {report['source'].get('params') or 0:,} parameters,
accuracy {_n(report['source'].get('accuracy'), 0.01, 2)}%. Latency was measured on this host (see each row), not on a device.</p>
<h2>Size vs accuracy vs latency</h2><p>Circle area grows with p50 latency; outlined points are on the Pareto front.</p>
{pareto_svg(report)}
<h2>Latency distribution</h2>{latency_svg(report)}
<h2>Artifacts</h2><table><tr><th>artifact</th><th>status</th><th>KB</th><th>zipped KB</th><th>p50 ms</th>
<th>accuracy %</th><th>agreement</th><th>measured on / error</th></tr>{rows}</table>
<h2>Validation per output</h2><table><tr><th>artifact</th><th>output</th><th>shape</th><th>SQNR dB</th>
<th>cosine</th><th>max abs diff</th><th>top-1 agreement</th><th>verdict</th></tr>{fidelity}</table>
<h2>Checks</h2><ul>{checks or '<li>No budgets configured.</li>'}</ul>
{f'<h2>Worth a look</h2><ul>{warnings}</ul>' if warnings else ''}
<h2>Per-layer sensitivity and per-op time</h2><p>Not measured in this build.</p>
</body></html>
"""


def _n(value: float | None, divisor: float, digits: int) -> str:
    return "-" if value is None else f"{value / divisor:.{digits}f}"
