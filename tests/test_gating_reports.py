"""Issue-4 contract: budgets, baselines with the noise rule, the report schema, JUnit, HTML, CI recipes."""
from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edge_pipeline.cli import app
from edge_pipeline.errors import ConfigError
from edge_pipeline.measure.profiling import summarize
from edge_pipeline.report.baseline import RelativeLimits, compare, load_report, make_baseline
from edge_pipeline.report.gating import outliers, parse_budget
from edge_pipeline.report.model import ArtifactReport, Report

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def art(fmt: str, precision: str, size: int, acc: float, p50: float, noise: float = 0.0, where: str = "host A") -> dict:
    return {"format": fmt, "precision": precision, "status": "ok", "size_bytes": size, "size_compressed_bytes": size,
            "sha256": "0" * 64, "accuracy": acc, "agreement": 1.0, "measured_on": where,
            "latency_ms": {"p50": p50, "p90": p50, "noise": noise, "threads": 1}}


def report(*artifacts: dict, target: str = "android") -> Report:
    return Report.from_json({"schema_version": 2, "target": target, "passed": True, "status": "passed",
                             "source": {}, "artifacts": list(artifacts)})


def by_metric(checks) -> dict:
    return {c.metric: c for c in checks}


def test_baseline_arithmetic() -> None:
    base = report(art("pte", "int8", 1000, 0.95, 1.0))
    same = by_metric(compare(base, base, RelativeLimits()))
    assert all(c.passed for c in same.values())
    grown = by_metric(compare(report(art("pte", "int8", 1030, 0.944, 1.2)), base, RelativeLimits()))
    assert not grown["size_growth_pct"].passed and grown["size_growth_pct"].value == pytest.approx(3.0)
    assert not grown["accuracy_loss_pt"].passed and grown["accuracy_loss_pt"].value == pytest.approx(0.6)
    assert not grown["latency_p50_growth_pct"].passed and "+20.0%" in grown["latency_p50_growth_pct"].message


def test_latency_inside_the_noise_is_not_a_regression() -> None:
    base = report(art("pte", "int8", 1000, 0.95, 1.0, noise=0.1))
    noisy = by_metric(compare(report(art("pte", "int8", 1000, 0.95, 1.2, noise=0.1)), base, RelativeLimits()))
    assert noisy["latency_p50_growth_pct"].passed and "within noise" in noisy["latency_p50_growth_pct"].message
    real = by_metric(compare(report(art("pte", "int8", 1000, 0.95, 1.5, noise=0.1)), base, RelativeLimits()))
    assert not real["latency_p50_growth_pct"].passed


def test_latency_across_machines_is_refused_not_compared() -> None:
    base = report(art("pte", "int8", 1000, 0.95, 1.0, where="host A"))
    check = by_metric(compare(report(art("pte", "int8", 1000, 0.95, 9.0, where="host B")), base, RelativeLimits()))
    latency = check["latency_p50_growth_pct"]
    assert latency.kind == "skipped" and latency.value is None and "different machines" in latency.message


def test_baseline_from_another_target_and_missing_artifacts() -> None:
    with pytest.raises(ConfigError, match="baseline is for target 'web'"):
        compare(report(art("pte", "int8", 1, 1, 1)), report(art("pte", "int8", 1, 1, 1), target="web"),
                RelativeLimits())
    checks = compare(report(), report(art("pte", "int8", 1, 1, 1)), RelativeLimits())
    assert [c.metric for c in checks] == ["present"] and not checks[0].passed


def test_budget_parsing() -> None:
    assert parse_budget("max-latency-ms=12") == ("max-latency-ms", 12.0)
    with pytest.raises(ConfigError, match="Did you mean 'max-accuracy-drop'"):
        parse_budget("max-acuracy-drop=1")
    with pytest.raises(ConfigError, match="must be a number"):
        parse_budget("max-size-kb=big")
    with pytest.raises(ConfigError, match="name=value"):
        parse_budget("max-size-kb")


def test_noise_is_the_spread_of_repeat_medians() -> None:
    steady = summarize(np.full(100, 2.0))
    assert steady.noise == 0.0 and steady.p50 == 2.0 and len(steady.repeat_p50) == 5
    drifting = summarize(np.concatenate([np.full(50, 1.0), np.full(50, 3.0)]))
    assert drifting.noise > 0.5 and drifting.p10 == 1.0 and drifting.p90 == 3.0


def test_int8_slower_than_fp32_is_flagged() -> None:
    arts = [art("pte", "fp32", 4, 1, 1.0), art("pte", "int8", 1, 1, 2.0), art("tflite", "int8", 1, 1, 0.5)]
    notes = outliers([ArtifactReport.from_json(a) for a in arts])
    assert notes == ["pte:int8 is slower than its fp32 twin (2 ms vs 1 ms p50) on this host"]


@pytest.mark.parametrize("content,message", [(None, "not found"), ('{"schema_version": 2, "tar', "not valid JSON"),
                                             ('{"schema_version": 1, "target": "android"}', "schema_version is 1")])
def test_bad_report_files_exit_2(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "report.json"
    if content is not None:
        path.write_text(content)
    result = runner.invoke(app, ["gate", str(path)])
    assert result.exit_code == 2 and message in result.output


# ---- against a real build -------------------------------------------------------------------------


@pytest.mark.slow
def test_report_validates_against_the_shipped_schema(android_build: dict) -> None:
    import jsonschema

    schema = json.loads((ROOT / "edge_pipeline" / "schemas" / "report.schema.json").read_text())
    jsonschema.validate(android_build["report"], schema)
    broken = copy.deepcopy(android_build["report"])
    broken["artifacts"][0]["agreement"] = 1.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


@pytest.mark.slow
def test_junit_parses_with_a_junit_library(android_build: dict) -> None:
    from junitparser import JUnitXml

    xml = JUnitXml.fromfile(str(android_build["out"] / "android" / "report.junit.xml"))
    suite = next(iter(xml))
    assert suite.name == "edgepipe.android" and suite.tests == len(android_build["report"]["artifacts"])
    assert suite.failures == 0


@pytest.mark.slow
def test_gate_against_itself_passes_and_a_smaller_baseline_fails(android_build: dict, tmp_path: Path) -> None:
    path = android_build["out"] / "android" / "report.json"
    result = runner.invoke(app, ["gate", str(path), "--baseline", str(path)])
    assert result.exit_code == 0, result.output
    baseline = tmp_path / "baseline.json"
    assert runner.invoke(app, ["baseline", "update", str(path), "--out", str(baseline)]).exit_code == 0
    smaller = make_baseline(load_report(baseline)).to_json()
    for entry in smaller["artifacts"].values():
        entry["size_bytes"] = int(entry["size_bytes"] * 0.9)
    (tmp_path / "smaller.json").write_text(json.dumps(smaller))
    junit = tmp_path / "gate.xml"
    result = runner.invoke(app, ["gate", str(path), "--baseline", str(tmp_path / "smaller.json"), "--junit", str(junit),
                                 "--json"])
    assert result.exit_code == 1
    failed = [c for c in json.loads(result.output)["checks"] if not c["passed"]]
    assert {c["metric"] for c in failed} == {"size_growth_pct"} and len(failed) == 4
    from junitparser import JUnitXml
    assert next(iter(JUnitXml.fromfile(str(junit)))).failures == 4
    other = dict(smaller, target="web")
    (tmp_path / "web.json").write_text(json.dumps(other))
    assert runner.invoke(app, ["gate", str(path), "--baseline", str(tmp_path / "web.json")]).exit_code == 2


@pytest.mark.slow
def test_cli_budget_flag_fails_the_build_and_writes_step_summary(android_build: dict, tmp_path: Path) -> None:
    from .conftest import run_cli

    summary = tmp_path / "summary.md"
    proc = run_cli("build", "--out", str(android_build["out"] / "flag"), "--budget", "max-size-kb=1",
                   "--budget", "min-agreement=0.9", cwd=tmp_path, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert proc.returncode == 1 and "size_kb = " in proc.stdout and "exceeds limit 1" in proc.stdout
    assert summary.read_text().startswith("# edgepipe build: android (FAILED)")


@pytest.mark.slow
def test_html_report_in_headless_chromium(android_build: dict, tmp_path: Path) -> None:
    """report.html opens offline (plotly inline: no request leaves the file), with no console error, and every
    chart holds report.json's own numbers."""
    from .browser import keep_screenshot, open_page

    report = android_build["report"]
    page_path = android_build["out"] / "android" / "report.html"
    requests: list[str] = []
    with open_page(page_path.as_uri(), tmp_path / "profile") as (page, errors):
        page.on("request", lambda r: requests.append(r.url))
        page.set_viewport_size({"width": 1200, "height": 900})
        page.reload()
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 3")
        charts = page.evaluate("""() => Object.fromEntries(Array.from(document.querySelectorAll('.js-plotly-plot'))
            .map(d => [d.id, d.data.map(t => ({x: t.x, y: t.y, meta: t.meta, median: t.median}))]))""")
        title = page.title()
        shot = page.screenshot(full_page=True)
        keep_screenshot(page, "report-html.png")
    assert errors == [] and title == "edgepipe android: PASSED"
    assert all(url.startswith("file://") for url in requests), requests
    artifacts = {f"{a['format']}:{a['precision']}": a for a in report["artifacts"]}
    plotted = {t["meta"]["artifact"]: (t["x"][0], t["y"][0]) for t in charts["tradeoff"]}
    assert plotted == {label: (pytest.approx(a["size_bytes"] / 1024), pytest.approx(a["accuracy"]))
                       for label, a in artifacts.items()}
    (sqnr,) = [t for t in charts["validation"] if t["meta"]["figure"] == "sqnr_db"]
    assert sqnr["y"] == [a["validation"]["outputs"][0]["sqnr_db"] for a in artifacts.values()]
    medians = {(t["meta"]["artifact"], t["meta"]["threads"]): t["median"][0] for t in charts["latency"]}
    assert medians == {(label, lat["threads"]): pytest.approx(lat["p50"]) for label, a in artifacts.items()
                       for lat in a["latency_by_threads"]}
    assert len(shot) > 50_000                 # charts drawn, not a blank page


def test_ci_recipes_parse_and_name_real_commands() -> None:
    import yaml

    text = (ROOT / "docs" / "ci.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    commands = ({c.name or c.callback.__name__ for c in app.registered_commands}
                | {g.name for g in app.registered_groups})
    makefile = (ROOT / "Makefile").read_text()
    seen = 0
    for block in blocks:
        doc = yaml.safe_load(block)
        steps = [s.get("run", "") for s in doc["jobs"]["build"]["steps"]] if "jobs" in doc else \
            doc["edge-models"]["script"] + doc["edge-models"]["before_script"]
        for line in steps:
            for sub in re.findall(r"edgepipe (\w+)", line):
                assert sub in commands, sub
                seen += 1
            for target in re.findall(r"make (\w+)", line):
                assert re.search(rf"^{target}:", makefile, re.M), target
    assert seen >= 4 and shutil.which("make")
