"""Configuration parsing: frozen dataclasses, quoted TOML paths, precedence file > profile > defaults."""
from __future__ import annotations

from pathlib import Path

import pytest

from edge_pipeline.config import load_config, resolve_target
from edge_pipeline.errors import ConfigError
from edge_pipeline.types import OutputSpec, ProfileSettings, Target

BASE = Target("android", "test", (OutputSpec("tflite", "fp32"), OutputSpec("pte", "int8")),
              {"max-size-kb": 500}, ProfileSettings(warmup=10, runs=100, threads=(1, 0)))


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_no_file_gives_the_builtin_example(tmp_path: Path) -> None:
    config = load_config(cwd=tmp_path)
    assert config.origin is None and config.source.example == "torch-digits" and config.source.model is None


def test_unknown_key_quotes_path_and_suggests(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", "[tool.edgepipe.targets.android.budgets]\nmax-sise-kb = 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(cwd=tmp_path)
    message = str(err.value)
    assert "tool.edgepipe.targets.android.budgets.max-sise-kb" in message
    assert "Did you mean 'max-size-kb'" in message


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    write(tmp_path, "edgepipe.toml", "[profile]\nruns = 'many'\n")
    with pytest.raises(ConfigError, match=r"'profile.runs' must be int"):
        load_config(cwd=tmp_path)


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    write(tmp_path, "edgepipe.toml", "model = \n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(cwd=tmp_path)


def test_edgepipe_toml_wins_over_pyproject(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", "[tool.edgepipe]\nexample = 'from-pyproject'\n")
    write(tmp_path, "edgepipe.toml", "example = 'from-edgepipe-toml'\n")
    assert load_config(cwd=tmp_path).source.example == "from-edgepipe-toml"


def test_user_model_paths_resolve_from_the_config_folder(tmp_path: Path) -> None:
    write(tmp_path, "edgepipe.toml", "model = 'pkg.mod:make'\nweights = 'w.pt'\nexample-inputs = [1, 3, 4, 4]\n")
    source = load_config(cwd=tmp_path).source
    assert source.model == "pkg.mod:make" and source.example is None
    assert source.base_dir == str(tmp_path.resolve()) and source.example_inputs == [1, 3, 4, 4]


def test_file_overrides_profile_which_overrides_defaults(tmp_path: Path) -> None:
    write(tmp_path, "edgepipe.toml", """
[profile]
runs = 7
[targets.android]
formats = ["pte:fp32"]
budgets = { max-accuracy-drop = 0.5 }
profile = { threads = [1, "all"] }
""")
    target = resolve_target(BASE, load_config(cwd=tmp_path))
    assert target.outputs == (OutputSpec("pte", "fp32"),)
    assert target.budgets == {"max-size-kb": 500, "max-accuracy-drop": 0.5}
    assert target.profile == ProfileSettings(warmup=10, runs=7, threads=(1, 0))


def test_bad_thread_value_is_rejected(tmp_path: Path) -> None:
    write(tmp_path, "edgepipe.toml", "[profile]\nthreads = [1, 'lots']\n")
    with pytest.raises(ConfigError, match="profile.threads"):
        load_config(cwd=tmp_path)


def test_explicit_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_prune_table_with_scope(tmp_path: Path) -> None:
    write(tmp_path, "edgepipe.toml", 'prune = { amount = 0.3, scope = "layer" }\n')
    assert load_config(cwd=tmp_path).source.prune == {"amount": 0.3, "kind": "unstructured", "fine_tune": None,
                                                      "scope": "layer"}
    write(tmp_path, "edgepipe.toml", 'prune = { amount = 0.3, kind = "structured", scope = "layer" }\n')
    refused = r"'prune.scope' must be one of: global for structured pruning .*unstructured: global, layer"
    with pytest.raises(ConfigError, match=refused):
        load_config(cwd=tmp_path)
