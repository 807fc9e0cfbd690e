"""`report.html`: one offline file rendered from report.json: interactive charts (plotly, its JavaScript inline,
so it opens from a CI artifact store with no network request) and the tables. See `charts.py` for what is drawn."""
from __future__ import annotations

import html

from edge_pipeline.report.charts import CHARTS
from edge_pipeline.report.model import Report


def charts_html(report: Report) -> str:
    """plotly.js once, then each chart with its data; the charts with nothing to show are named at the end."""
    import plotly.offline

    parts, missing = [f"<script>{plotly.offline.get_plotlyjs()}</script>"], []
    for div_id, title, explanation, draw in CHARTS:
        figure = draw(report)
        if figure is None:
            missing.append(title)
            continue
        figure.update_layout(template="plotly_white", margin={"t": 40})
        parts.append(f"<h2>{html.escape(title)}</h2><p>{html.escape(explanation)}</p>")
        parts.append(figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                                    config={"displaylogo": False, "responsive": True}))
    if missing:
        parts.append(f"<p class=\"missing\">Not measured in this build: {html.escape(', '.join(missing))}.</p>")
    return "\n".join(parts)


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
{charts_html(report)}
<h2>Artifacts</h2><table><tr><th>artifact</th><th>status</th><th>KB</th><th>zipped KB</th><th>p50 ms</th>
<th>accuracy %</th><th>agreement</th><th>measured on / error</th></tr>{rows}</table>
{LANGUAGE_HEADER + language + '</table>' if language else ''}
<h2>Validation per output</h2><table><tr><th>artifact</th><th>output</th><th>shape</th><th>SQNR dB</th>
<th>cosine</th><th>max abs diff</th><th>top-1 agreement</th><th>verdict</th></tr>{fidelity}</table>
<h2>Checks</h2><ul>{checks or '<li>No budgets configured.</li>'}</ul>
{f'<h2>Worth a look</h2><ul>{warnings}</ul>' if warnings else ''}
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
