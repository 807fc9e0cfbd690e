"""report.md: a view of the typed report (the same content report.json holds)."""
from __future__ import annotations

from collections.abc import Sequence

from edge_pipeline.json_types import JsonObject
from edge_pipeline.report.model import ArtifactReport, JsonMap, Latency, OutputValidation, Report
from edge_pipeline.types import JsonValue

ARTIFACT_HEADER = ("| artifact | status | size | zipped | p50 ms (1 thr) | p90 ms | best p50 (threads) | accuracy | "
                   "drop pt | agreement | max abs diff |")


def to_markdown(report: Report) -> str:
    verdict = "PASSED" if report.passed else "FAILED"
    lines = [f"# edgepipe build: {report.target} ({verdict})", "", _source_line(report), "", ARTIFACT_HEADER,
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for a in report.artifacts:
        lat = a.latency_ms
        best = _best(a.latency_by_threads)
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            a.label, a.status, _kb(a.size_bytes), _kb(a.size_compressed_bytes),
            _num(lat.p50 if lat else None), _num(lat.p90 if lat else None),
            f"{_num(best.p50 if best else None)} ({best.threads if best else '-'})", _pct(a.accuracy),
            _num(a.accuracy_drop, 2), _num(a.agreement, 4), _num(a.max_abs_diff, 4)))
    measured = sorted({a.measured_on for a in report.artifacts if a.measured_on})
    if measured:
        lines += ["", "Latency was measured on this host, not on a device: " + "; ".join(measured) + "."]
    for a in report.artifacts:
        skipped = (a.export.metadata or {}).get("not_exercised") if a.export else None
        if skipped:
            lines += ["", f"**{a.label} was not served**: not exercised here: {skipped}."]
        if a.status == "unvalidated":
            lines += ["", f"**{a.label} is UNVALIDATED**: "
                          f"{(a.export.unvalidated_reason if a.export else None) or 'no runtime here can run it'}."]
    lines += (_generation_table(report) + _load_table(report) + _output_table(report) + _sequence_table(report)
              + _op_tables(report) + _coverage_table(report) + _sensitivity_tables(report))
    failures = [a for a in report.artifacts if a.error]
    if failures or report.checks:
        lines += ["", "## Checks", ""]
    for a in failures:
        if a.error is not None:
            lines.append(f"- FAILED {a.label} ({a.error.stage}): {a.error.message}")
    for c in report.checks:
        lines.append(f"- {'ok' if c.passed else 'FAILED'} {c.message}")
    if report.log:
        lines += ["", f"Native libraries' output during the build: [{report.log}]({report.log})"]
    return "\n".join(lines) + "\n"


def _source_line(report: Report) -> str:
    src = report.source
    if src.framework == "artifact":
        provenance = src.extra.get("provenance")
        path = provenance.get("path") if isinstance(provenance, dict) else None
        return f"Profiled artifact: {path} (not built by this run)."
    task = f" {src.task}" if src.task else ""
    line = (f"Source: {src.framework}{task} model, {src.params:,} params, {src.size_bytes:,} bytes of "
            f"weights, eval accuracy {_pct(src.accuracy)}.")
    pruning = src.extra.get("pruning")
    if isinstance(pruning, dict) and pruning:
        line += " " + _pruning_line(pruning)
    return line


def _pruning_line(pruning: JsonObject) -> str:
    """What pruning did, from the built-in pruners' record; a pruner that records other figures gets its kind and
    amount only (a plugin's record is its own)."""
    b, a = pruning.get("before"), pruning.get("after")
    try:
        if not (isinstance(b, dict) and isinstance(a, dict)):
            raise KeyError("before/after")
        fine_tuned = ", fine-tuned" if pruning["fine_tuned"] else ""
        return (f"Pruned ({pruning['kind']}, {pruning['amount']:g}{fine_tuned}): "
                f"params {b['params']:,} -> {a['params']:,}, MACs {b['macs']:,} -> {a['macs']:,}, sparsity "
                f"{a['sparsity']:.0%}, float accuracy {_pct(_float(b['accuracy']))} -> "
                f"{_pct(_float(a['accuracy']))}; accuracy drops below are from the unpruned model."
                + (" Zeroed weights are still stored: compare the zipped sizes."
                   if pruning["kind"] == "unstructured" else ""))
    except (KeyError, TypeError, ValueError):
        return f"Pruned ({pruning.get('kind')}, {pruning.get('amount')}); accuracy drops are from the unpruned model."


def _generation_table(report: Report) -> list[str]:
    """Language models: the token-level tiers and the speed an app sees, per artifact."""
    rows = [(a, a.generation) for a in report.artifacts if a.generation is not None]
    if not rows:
        return []
    lines = ["", "## Language model", "",
             "| artifact | token agreement | mean KL | ppl (source) | ppl +% | worst logit SQNR dB | first divergence "
             "per prompt | runtime loop = stepping | TTFT ms (prompt tokens) | prefill tok/s | decode tok/s "
             "(threads) | load ms |", "|---|---:|---:|---|---:|---:|---|---|---|---:|---|---:|"]
    for a, g in rows:
        ttft = ", ".join(f"{v:g} ({k})" for k, v in (g.ttft_ms_by_prompt_tokens or {}).items()) or "-"
        decode = ", ".join(f"{v:g} ({k})" for k, v in (g.decode_tokens_per_s_by_threads or {}).items()) or "-"
        divergence = ", ".join("-" if d is None else str(d) for d in g.first_divergence)
        lines.append(f"| {a.label} | {_num(g.token_agreement, 4)} | {_num(g.mean_kl, 4)} | {_num(g.perplexity, 2)} "
                     f"({_num(g.source_perplexity, 2)}) | {_num(g.perplexity_increase_pct, 2)} | "
                     f"{_num(g.worst_logit_sqnr_db, 1)} | {divergence} | {_shown(g.runtime_loop_matches)} | {ttft} | "
                     f"{_num(g.prefill_tokens_per_s, 0)} | {decode} | {_num(g.load_ms, 1)} |")
    where = sorted({g.measured_on for _, g in rows if g.measured_on})
    if where:
        lines += ["", "Generation speed was measured on this host, not on a device: " + "; ".join(where) + "."]
    return lines


def _load_table(report: Report) -> list[str]:
    """Served artifacts under a bounded load test: every concurrency level, and where it was measured."""
    served = [a for a in report.artifacts if a.server_load is not None]
    if not served:
        return []
    lines = ["", "## Server load test", "",
             "| artifact | clients at once | requests | errors | p50 ms | p90 ms | p99 ms | requests/s "
             "| server peak MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for a in served:
        load = a.server_load
        for level in load.levels if load else ():
            lines.append(f"| {a.label} | {level.concurrency} | {level.requests} | {level.errors} | "
                         f"{_num(level.p50_ms, 2)} | {_num(level.p90_ms, 2)} | {_num(level.p99_ms, 2)} | "
                         f"{_num(level.throughput_rps, 1)} | {_num(load.peak_memory_mb if load else None, 0)} |")
    where = sorted({a.server_load.measured_on for a in served if a.server_load and a.server_load.measured_on})
    lines += ["", "Each request is an HTTP round trip to a server this build started on 127.0.0.1; clients and "
                  "server share this host's cores: " + "; ".join(where) + "."]
    return lines


def _best(latencies: Sequence[Latency]) -> Latency | None:
    """The fastest thread count's measurement (None when none was measured)."""
    return min(latencies, key=lambda e: e.p50 or float("inf")) if latencies else None


def _output_table(report: Report) -> list[str]:
    """Per-output fidelity of every validated artifact, and what decided."""
    rows: list[tuple[ArtifactReport, OutputValidation]] = [
        (a, o) for a in report.artifacts for o in (a.validation.outputs if a.validation else ())]
    if not rows:
        return []
    lines = ["", "### Validation per output (vs the float source)", "",
             "| artifact | output | shape | SQNR dB | cosine | max abs diff | top-1 agreement (95% CI) | verdict |",
             "|---|---|---|---:|---:|---:|---|---|"]
    for a, o in rows:
        agreement = "-" if o.agreement is None else f"{o.agreement:.4f} {_shown(o.agreement_ci95)}"
        sqnr = "exact" if o.max_abs_diff == 0.0 else _num(o.sqnr_db, 1)
        lines.append(f"| {a.label} | {o.name} | {_shown(o.shape)} | {sqnr} | "
                     f"{_num(o.cosine, 6)} | {_num(o.max_abs_diff, 4)} | {agreement} | "
                     f"{'pass' if o.passed else 'REFUSED'} |")
    decided = sorted({f"{a.label}: {a.validation.decided_by}"
                      for a, _ in rows if a.validation is not None and a.validation.decided_by})
    return lines + ["", "Decided by: " + "; ".join(decided) + "."]


def _sequence_table(report: Report) -> list[str]:
    """Stateful models: each output's SQNR along the validated sequences, and the real-time factor."""
    rows = [(a, a.validation.sequence) for a in report.artifacts
            if a.validation is not None and a.validation.sequence is not None]
    if not rows:
        return []
    first = rows[0][1]
    lines = ["", f"### Over sequences ({first.steps} calls each, state {', '.join(first.state)} from "
                 f"{first.initial_state}, {first.state_from})", "",
             "| artifact | sequences | output | SQNR dB step 1 | last step | worst (step) | drift dB | "
             "real-time factor |",
             "|---|---:|---|---:|---:|---|---:|---:|"]
    for a, sequence in rows:
        for o in sequence.outputs:
            worst = f"{_num(o.worst_sqnr_db, 1)} ({o.worst_step})" if o.worst_step else "exact"
            lines.append(f"| {a.label} | {sequence.sequences} | {o.name}{' (state)' if o.state else ''} | "
                         f"{_exact(o.first_sqnr_db)} | {_exact(o.last_sqnr_db)} | {worst} | {_num(o.drift_db, 2)} | "
                         f"{_num(sequence.real_time_factor, 4)} |")
    return lines


def _exact(sqnr: float | None) -> str:
    return "exact" if sqnr is None else _num(sqnr, 1)


def _op_tables(report: Report, top: int = 5) -> list[str]:
    lines: list[str] = []
    for a in report.artifacts:
        profile = a.op_profile
        if not profile or not profile.get("top"):
            continue
        title = "Top ops by time" if profile.get("timed") else f"Ops (untimed, {profile['op_count']} in all)"
        lines += ["", f"### {title}: {a.label} ({profile['source']})", "",
                  "| op | node | source layer | avg ms | share |", "|---|---|---|---:|---:|"]
        for op in _maps(profile["top"])[:top]:
            share = op.get("share")
            shown = "-" if not isinstance(share, (int, float)) else f"{share * 100:.1f}%"
            lines.append(f"| {op['op']} | {op['name']} | {op.get('layer') or '-'} | "
                         f"{_num(_float(op.get('avg_ms')), 4)} | {shown} |")
    return lines


def _sensitivity_tables(report: Report) -> list[str]:
    lines: list[str] = []
    for a in report.artifacts:
        table, fallback = a.sensitivity, a.fallback
        if not table:
            continue
        title = f"### Per-layer int8 sensitivity: {a.label}"
        if not table.get("layers"):
            lines += ["", title, "", f"Sensitivity {table.get('status', 'not run')}."]
            continue
        lines += ["", title, "", f"{table['method']}. Extra quantization passes for the ranking: "
                  f"{table.get('quantizations', 0)}.", "", "| layer | SQNR dB (the lower, the more sensitive) |",
                  "|---|---:|"]
        for row in _maps(table["layers"])[:10]:
            lines.append(f"| {row['layer']} | {row['sqnr_db']} |")
        if fallback:
            kept = "; ".join(f"regions kept {kind}: {', '.join(map(str, _items(fallback[f'kept_{kind}']))) or 'none'}"
                             for kind in ("int16", "float") if f"kept_{kind}" in fallback)
            steps = _maps(fallback["steps"])
            verified = fallback.get("verifications", len(steps) - 1)
            met = "met" if fallback["met"] else "NOT met"
            lines += ["", f"Fallback for max-accuracy-drop {fallback['max_accuracy_drop']:g} pt: {kept}; drop "
                          f"{steps[-1]['drop_pts']} pt ({met}; {verified} re-quantizations verified)."]
    return lines


def _coverage_table(report: Report) -> list[str]:
    rows = [(a, c) for a in report.artifacts for c in (a.op_coverage or [])]
    if not rows:
        return []
    lines = ["", "### Op coverage (before and after conversion)", "",
             "| artifact | runtime | stage | nodes | unsupported | ops (layer) |", "|---|---|---|---:|---:|---|"]
    for a, c in rows:
        ops = ", ".join(f"{u['op']} x{u['count']} ({_layers(u['layers'])})" for u in _maps(c["unsupported"])[:4])
        lines.append(f"| {a.label} | {c['runtime']} | {c['stage']} | {c['nodes']} | "
                     f"{c['unsupported_nodes']} | {ops or '-'} |")
    return lines


def _layers(layers: JsonValue) -> str:
    names = [str(name) for name in _items(layers)]
    return ", ".join(names[:2]) + (", ..." if len(names) > 2 else "")


def _maps(value: JsonValue) -> list[JsonMap]:
    """The objects of a free-form list (an op profile's rows, a coverage entry's ops)."""
    return [item for item in _items(value) if isinstance(item, dict)]


def _items(value: JsonValue) -> list[JsonValue]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _shown(value: object) -> str:
    """A value as report.json shows it (a tuple as a list)."""
    return str(list(value)) if isinstance(value, tuple) else str(value)


def _float(value: JsonValue) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _kb(value: int | None) -> str:
    return "-" if value is None else f"{value / 1024:.1f} KB"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
