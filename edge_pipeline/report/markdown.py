"""report.md: a view of the typed report (rendered from its JSON form, the same text report.json holds)."""
from __future__ import annotations

from typing import Any

from edge_pipeline.report.model import Report


def to_markdown(typed: Report) -> str:
    report = typed.to_json()
    src = report["source"]
    verdict = "PASSED" if report["passed"] else "FAILED"
    if src["framework"] == "artifact":
        source_line = f"Profiled artifact: {src['provenance']['path']} (not built by this run)."
    else:
        source_line = (f"Source: {src['framework']} model, {src['params']:,} params, {src['size_bytes']:,} bytes of "
                       f"weights, eval accuracy {_pct(src.get('accuracy'))}.")
    pruning = src.get("pruning")
    if pruning:
        b, a = pruning["before"], pruning["after"]
        source_line += (f" Pruned ({pruning['kind']}, {pruning['amount']:g}{', fine-tuned' if pruning['fine_tuned'] else ''}): "
                        f"params {b['params']:,} -> {a['params']:,}, MACs {b['macs']:,} -> {a['macs']:,}, sparsity "
                        f"{a['sparsity']:.0%}, float accuracy {_pct(b['accuracy'])} -> {_pct(a['accuracy'])}; "
                        f"accuracy drops below are from the unpruned model."
                        + (" Zeroed weights are still stored: compare the zipped sizes." if pruning["kind"] == "unstructured" else ""))
    lines = [f"# edgepipe build: {report['target']} ({verdict})", "", source_line, "",
             "| artifact | status | size | zipped | p50 ms (1 thr) | p90 ms | best p50 (threads) | accuracy | drop pt | agreement | max abs diff |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for a in report["artifacts"]:
        lat = a.get("latency_ms") or {}
        best = min(a.get("latency_by_threads") or [{}], key=lambda e: e.get("p50") or float("inf"))
        lines.append("| {}:{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            a["format"], a["precision"], a["status"], _kb(a.get("size_bytes")), _kb(a.get("size_compressed_bytes")),
            _num(lat.get("p50")), _num(lat.get("p90")),
            f"{_num(best.get('p50'))} ({best.get('threads', '-')})", _pct(a.get("accuracy")),
            _num(a.get("accuracy_drop"), 2), _num(a.get("agreement"), 4), _num(a.get("max_abs_diff"), 4)))
    measured = sorted({a["measured_on"] for a in report["artifacts"] if a.get("measured_on")})
    if measured:
        lines += ["", "Latency was measured on this host, not on a device: " + "; ".join(measured) + "."]
    for a in report["artifacts"]:
        if a["status"] == "unvalidated":
            lines += ["", f"**{a['format']}:{a['precision']} is UNVALIDATED**: "
                          f"{(a.get('export') or {}).get('unvalidated_reason', 'no runtime here can run it')}."]
    lines += _output_table(report) + _op_tables(report) + _coverage_table(report) + _sensitivity_tables(report)
    failures = [a for a in report["artifacts"] if a.get("error")]
    if failures or report["checks"]:
        lines += ["", "## Checks", ""]
    for a in failures:
        lines.append(f"- FAILED {a['format']}:{a['precision']} ({a['error'].get('stage')}): {a['error']['message']}")
    for c in report["checks"]:
        lines.append(f"- {'ok' if c['passed'] else 'FAILED'} {c['message']}")
    if report.get("log"):
        lines += ["", f"Native libraries' output during the build: [{report['log']}]({report['log']})"]
    return "\n".join(lines) + "\n"


def _output_table(report: dict[str, Any]) -> list[str]:
    """Per-output fidelity of every validated artifact, and what decided."""
    rows = [(a, o) for a in report["artifacts"] for o in ((a.get("validation") or {}).get("outputs") or [])]
    if not rows:
        return []
    lines = ["", "### Validation per output (vs the float source)", "",
             "| artifact | output | shape | SQNR dB | cosine | max abs diff | top-1 agreement (95% CI) | verdict |",
             "|---|---|---|---:|---:|---:|---|---|"]
    for a, o in rows:
        agreement = "-" if o.get("agreement") is None else f"{o['agreement']:.4f} {o.get('agreement_ci95')}"
        sqnr = "exact" if o.get("max_abs_diff") == 0.0 else _num(o.get("sqnr_db"), 1)
        lines.append(f"| {a['format']}:{a['precision']} | {o['name']} | {o.get('shape')} | {sqnr} | "
                     f"{_num(o.get('cosine'), 6)} | {_num(o.get('max_abs_diff'), 4)} | {agreement} | "
                     f"{'pass' if o.get('passed') else 'REFUSED'} |")
    decided = sorted({f"{a['format']}:{a['precision']}: {a['validation']['decided_by']}"
                      for a, _ in rows if (a.get("validation") or {}).get("decided_by")})
    return lines + ["", "Decided by: " + "; ".join(decided) + "."]


def _op_tables(report: dict[str, Any], top: int = 5) -> list[str]:
    lines: list[str] = []
    for a in report["artifacts"]:
        profile = a.get("op_profile")
        if not profile or not profile.get("top"):
            continue
        title = "Top ops by time" if profile.get("timed") else f"Ops (untimed, {profile['op_count']} in all)"
        lines += ["", f"### {title}: {a['format']}:{a['precision']} ({profile['source']})", "",
                  "| op | node | source layer | avg ms | share |", "|---|---|---|---:|---:|"]
        for op in profile["top"][:top]:
            share = "-" if op.get("share") is None else f"{op['share'] * 100:.1f}%"
            lines.append(f"| {op['op']} | {op['name']} | {op.get('layer') or '-'} | {_num(op.get('avg_ms'), 4)} | {share} |")
    return lines


def _sensitivity_tables(report: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for a in report["artifacts"]:
        table, fallback = a.get("sensitivity"), a.get("fallback")
        if not table:
            continue
        title = f"### Per-layer int8 sensitivity: {a['format']}:{a['precision']}"
        if not table.get("layers"):
            lines += ["", title, "", f"Sensitivity {table.get('status', 'not run')}."]
            continue
        lines += ["", title, "", f"{table['method']}. Extra quantization passes for the ranking: "
                  f"{table.get('quantizations', 0)}.", "", "| layer | SQNR dB (the lower, the more sensitive) |", "|---|---:|"]
        for row in table["layers"][:10]:
            lines.append(f"| {row['layer']} | {row['sqnr_db']} |")
        if fallback:
            kept = ", ".join(fallback["kept_float"]) or "none"
            last = fallback["steps"][-1]
            lines += ["", f"Fallback for max-accuracy-drop {fallback['max_accuracy_drop']:g} pt: layers kept float: {kept}; "
                          f"drop {last['drop_pts']} pt ({'met' if fallback['met'] else 'NOT met'}; "
                          f"{fallback.get('verifications', len(fallback['steps']) - 1)} re-quantizations verified)."]
    return lines


def _coverage_table(report: dict[str, Any]) -> list[str]:
    rows = [(a, c) for a in report["artifacts"] for c in (a.get("op_coverage") or [])]
    if not rows:
        return []
    lines = ["", "### Op coverage (before and after conversion)", "",
             "| artifact | runtime | stage | nodes | unsupported | ops (layer) |", "|---|---|---|---:|---:|---|"]
    for a, c in rows:
        ops = ", ".join(f"{u['op']} x{u['count']} ({', '.join(u['layers'][:2])}{', ...' if len(u['layers']) > 2 else ''})"
                        for u in c["unsupported"][:4]) or "-"
        lines.append(f"| {a['format']}:{a['precision']} | {c['runtime']} | {c['stage']} | {c['nodes']} | "
                     f"{c['unsupported_nodes']} | {ops} |")
    return lines


def _kb(value: int | None) -> str:
    return "-" if value is None else f"{value / 1024:.1f} KB"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
