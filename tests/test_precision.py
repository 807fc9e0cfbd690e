"""Precision is the one list of precisions: unknown names are refused with the valid ones, every exporter's
precision is known, tune searches in its order, and its tolerances are the ones validation used before."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_pipeline import config, registry
from edge_pipeline.building import tune
from edge_pipeline.building.plan import check_outputs
from edge_pipeline.cli import app
from edge_pipeline.config import load_config
from edge_pipeline.errors import EXIT_USAGE, ConfigError
from edge_pipeline.measure.validate import thresholds_for
from edge_pipeline.plugins import Exporter
from edge_pipeline.precision import Precision
from edge_pipeline.types import OutputSpec, Target

# validate.py's DEFAULT_THRESHOLDS before Precision owned them: (min SQNR dB, min agreement, max drop, exact)
OLD_THRESHOLDS = {
    "fp32": (40.0, 0.99, 0.5, True),
    "fp16": (25.0, 0.98, 1.0, True),
    "int8": (10.0, 0.90, 2.0, False),
    "int8-dynamic": (10.0, 0.90, 2.0, False),
    "int8-weight": (10.0, 0.90, 2.0, False),
    "uint8": (10.0, 0.90, 2.0, False),
    "as-built": (10.0, 0.90, 2.0, False),
    "int16x8": (15.0, 0.95, 1.0, False),
    "int4": (6.0, 0.80, 5.0, False),
}
# tune.py's SEARCHED_PRECISIONS before Precision owned the search order
OLD_SEARCHED = ("fp32", "fp16", "int8", "int8-dynamic", "int8-weight", "int16x8", "int4")


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edgepipe.toml"
    path.write_text(text)
    return path


def test_unknown_precision_is_refused_with_the_valid_names() -> None:
    with pytest.raises(ConfigError) as err:
        Precision.parse("int9")
    message = str(err.value)
    assert "unknown precision 'int9'" in message and "Did you mean 'int8'?" in message
    for name in Precision.names():
        assert name in message
    assert "\n" not in message and err.value.exit_code == EXIT_USAGE


def test_known_names_parse_to_their_entry() -> None:
    for precision in Precision.all():
        assert Precision.parse(precision.name) is precision and str(precision) == precision.name
    assert len(set(Precision.names())) == len(Precision.all())


def test_as_built_describes_profiled_artifacts_but_no_output_asks_for_it() -> None:
    assert Precision.parse("as-built").name == "as-built"
    with pytest.raises(ConfigError, match="unknown precision 'as-built'"):
        Precision.parse("as-built", buildable=True)
    assert "as-built" not in Precision.names(buildable=True)


def test_every_exporter_precision_is_a_known_precision() -> None:
    exporters, broken = registry.load_all(Exporter)
    assert exporters and not broken
    offered = {p for e in exporters for p in e.precisions}
    assert offered <= set(Precision.names(buildable=True)), offered - set(Precision.names())
    assert {"fp32", "fp16", "int8", "int8-dynamic", "int8-weight", "int16x8", "int8-mixed", "int4", "uint8"} <= offered


def test_thresholds_are_the_ones_validation_used_before() -> None:
    """Per-output thresholds unchanged; the language-model ones (added with 8da4w) are looser for quantized
    precisions than for float, never looser than the broken vendor default measured on a 135M model."""
    assert set(Precision.names()) == set(OLD_THRESHOLDS) | {"8da4w", "int8-mixed"}
    assert Precision.parse("int8-mixed").thresholds == Precision.parse("int8").thresholds   # judged as int8
    for name, (sqnr, agreement, drop, exact) in OLD_THRESHOLDS.items():
        t = Precision.parse(name).thresholds
        assert (t.min_sqnr_db, t.min_agreement, t.max_accuracy_drop, t.exact) == (sqnr, agreement, drop, exact)
        chosen = asdict(thresholds_for(Precision.parse(name)))
        assert {k: chosen[k] for k in ("min_sqnr_db", "min_agreement", "max_accuracy_drop", "exact",
                                       "accuracy_budget_from")} == {
            "min_sqnr_db": sqnr, "min_agreement": agreement, "max_accuracy_drop": drop, "exact": exact,
            "accuracy_budget_from": "precision default"}
    fp32, four_bit = (Precision.parse(n).thresholds for n in ("fp32", "8da4w"))
    assert fp32.min_token_agreement > four_bit.min_token_agreement > 0.53      # vendor default: 52.6%
    assert fp32.max_ppl_increase_pct < four_bit.max_ppl_increase_pct < 42     # vendor default: +42%


def test_an_unknown_precision_never_reaches_thresholds() -> None:
    """Thresholds take a Precision, and no Precision has an unknown name: nothing is silently judged as int8."""
    with pytest.raises(ConfigError, match="unknown precision 'int9'"):
        thresholds_for(Precision.parse("int9"))
    with pytest.raises(ConfigError, match="unknown precision 'int9'"):
        OutputSpec("tflite", "int9")


def test_tune_searches_precisions_in_precision_order(tmp_path: Path) -> None:
    assert tuple(p.name for p in Precision.searched_space()) == OLD_SEARCHED
    assert not hasattr(tune, "SEARCHED_PRECISIONS")
    settings = tune.TuneSettings(target="android", out_dir=tmp_path, config=load_config(cwd=tmp_path))
    space = tune.search_space(settings)
    exporters = registry.load_all(Exporter)[0]
    formats = list(dict.fromkeys(o.format for o in registry.target("android").outputs))
    expected = [f"{fmt}:{p.name}" for fmt in formats for p in Precision.searched_space()
                if any(e.format == fmt and p.name in e.precisions for e in exporters)]
    assert space == expected and "tflite:int16x8" in space and "pte:int4" in space
    assert all(out.split(":")[1] in OLD_SEARCHED for out in space)


def test_prune_kinds_are_the_installed_pruners() -> None:
    """`[prune] kind` and tune's search both read the installed pruners: a new pruner plugin is one more kind."""
    assert list(config.installed_pruners()) == ["structured", "unstructured"]
    assert config.installed_pruners()["unstructured"].scopes == ("global", "layer")
    assert {"minmax", "histogram", "percentile", "entropy"} <= set(config.calibration_methods())


def test_config_refuses_an_unknown_output_precision(tmp_path: Path) -> None:
    write_config(tmp_path, "[targets.android]\nformats = ['tflite:fp32', 'tflite:int9']\n")
    with pytest.raises(ConfigError) as err:
        load_config(cwd=tmp_path)
    message = str(err.value)
    assert "targets.android.formats[1]" in message and "'tflite:int9'" in message
    assert "unknown precision 'int9'" in message and "uint8" in message and "\n" not in message


def test_cli_exits_2_on_an_unknown_output_precision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_config(tmp_path, "[targets.android]\nformats = ['tflite:int9']\n")
    result = CliRunner().invoke(app, ["build", "--json"])
    assert result.exit_code == EXIT_USAGE
    payload = json.loads(result.stdout.splitlines()[0])
    assert payload["error"]["type"] == "ConfigError" and "unknown precision 'int9'" in payload["error"]["message"]


def test_plan_refuses_an_unknown_precision_in_a_target_built_in_code() -> None:
    with pytest.raises(ConfigError, match="'tflite:int9': unknown precision 'int9'"):
        Target("custom", "made in code", (OutputSpec("tflite", "fp32"), OutputSpec.parse("tflite:int9")))
    target = Target("custom", "made in code", (OutputSpec("tflite", "as-built"),))
    with pytest.raises(ConfigError, match="'tflite:as-built': unknown precision 'as-built'"):
        check_outputs(target)


def test_validation_overrides_apply_and_unknown_precisions_are_refused(tmp_path: Path) -> None:
    write_config(tmp_path, "[validation.int8]\nmin-sqnr-db = 12\n[validation.uint8]\nmax-accuracy-drop = 1\n")
    cfg = load_config(cwd=tmp_path)
    assert thresholds_for(Precision.parse("int8"), cfg.validation).min_sqnr_db == 12.0
    assert thresholds_for(Precision.parse("uint8"), cfg.validation).max_accuracy_drop == 1.0
    # one precision, not its family
    assert thresholds_for(Precision.parse("int8-dynamic"), cfg.validation).min_sqnr_db == 10.0
    write_config(tmp_path, "[validation.int9]\nmin-sqnr-db = 12\n")
    with pytest.raises(ConfigError, match=r"'validation\.int9': unknown precision 'int9'\. Valid: fp32, fp16"):
        load_config(cwd=tmp_path)
    write_config(tmp_path, "[validation.int8]\nmin-sqnr = 12\n")
    with pytest.raises(ConfigError, match="unknown key 'validation.int8.min-sqnr'"):
        load_config(cwd=tmp_path)


def test_one_list_of_built_in_task_metrics() -> None:
    """The config accepts exactly the task metrics validation implements (one name list, one table)."""
    from edge_pipeline.measure.validate import BUILTIN_METRICS
    from edge_pipeline.types import TASK_METRICS

    assert set(TASK_METRICS) == set(BUILTIN_METRICS)
