"""A plugin that breaks its contract is refused with one line naming it and the member, whether checked
directly or found through entry points like a third-party package; a plain class gets the defaults."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_pipeline import registry
from edge_pipeline.errors import EXIT_USAGE, PluginError


class GoodExporter:
    """A third-party exporter that inherits nothing: only the required members."""
    name = "good"
    format = "good"
    suffix = ".good"
    frameworks = ("torch",)
    precisions = {"fp32": None}
    runner = "litert"
    distributions = ("torch",)

    def export(self, model: Any, dest: Path) -> dict[str, Any]:
        return {}


def broken(**members: Any) -> type:
    """GoodExporter with members replaced; a value of `...` removes the member."""
    attrs = {k: v for k, v in vars(GoodExporter).items() if not k.startswith("__")}
    attrs.update({k: v for k, v in members.items() if v is not ...})
    for k in [k for k, v in members.items() if v is ...]:
        del attrs[k]
    return type("BrokenExporter", (), attrs)


CASES = {
    "missing": (dict(suffix=...), "'suffix' is missing"),
    "wrong-type": (dict(is_directory="yes"), "'is_directory' is 'yes'"),
    "no-export": (dict(export=...), "'export' is missing"),
    "onnx-without-finish": (dict(onnx_based=True), "'finish' is missing"),
    "unknown-transform": (dict(precisions={"int8": "no-such-transform"}), "'no-such-transform'"),
    "unknown-runner": (dict(runner="no-such-runner"), "'no-such-runner'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_broken_exporter_is_refused_naming_it_and_the_member(case: str) -> None:
    members, says = CASES[case]
    with pytest.raises(PluginError) as info:
        registry.check("exporter", broken(**members))
    message = str(info.value)
    assert "'good'" in message and "BrokenExporter" in message and says in message, message
    assert "\n" not in message and info.value.exit_code == EXIT_USAGE


def test_a_transform_without_its_apply_method_is_refused() -> None:
    class ArtifactOnly:
        name, frameworks, needs_calibration, applies_to = "art", ("onnx",), False, "artifact"

    with pytest.raises(PluginError, match="'apply_artifact' is missing"):
        registry.check("transform", ArtifactOnly)


def test_a_plain_plugin_gets_the_documented_defaults() -> None:
    cls = broken()   # a fresh copy: defaults are set on the class
    assert registry.check("exporter", cls) is cls
    assert (cls.is_directory, cls.onnx_based, cls.unvalidated_reason) == (False, False, None)


@pytest.fixture()
def thirdparty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A package registered as pip would: one exporter lacks `suffix`, one is fine."""
    (tmp_path / "edgepipe_contract_plugins.py").write_text(
        "class Broken:\n    name = 'broken'\n    format = 'broken'\n    frameworks = ('torch',)\n"
        "    precisions = {'fp32': None}\n    runner = 'litert'\n    distributions = ()\n"
        "    def export(self, model, dest):\n        return {}\n")
    info = tmp_path / "edgepipe_contract_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: edgepipe-contract-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[edgepipe.exporters]\nbroken = edgepipe_contract_plugins:Broken\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry._entry_points.cache_clear()
    yield
    monkeypatch.undo()
    registry._entry_points.cache_clear()


def test_a_broken_third_party_plugin_is_refused_when_loaded(thirdparty: None) -> None:
    with pytest.raises(PluginError, match=r"the exporter 'broken' \(edgepipe_contract_plugins:Broken\) .*'suffix'"):
        registry.load("exporter", "broken")
    loaded, broken_ones = registry.load_all("exporter")   # the others still load
    assert set(broken_ones) == {"broken"} and "pte" in {e.name for e in loaded}


def test_a_transport_that_cannot_measure_is_refused() -> None:
    class Mute:
        name, schemes = "mute", ("mute",)

        def parse(self, url: str) -> str:
            return url

    with pytest.raises(PluginError, match="neither 'wrap_runner' nor 'measure_artifact'") as info:
        registry.check("transport", Mute)
    assert "'mute'" in str(info.value) and "\n" not in str(info.value)
    bad_scheme = type("BadScheme", (Mute,), {"name": "bad", "schemes": ("not a scheme",),
                                             "wrap_runner": lambda self, runner, url: runner})
    with pytest.raises(PluginError, match="'not a scheme' is not a URL scheme"):
        registry.check("transport", bad_scheme)


def test_a_bundler_with_bad_formats_is_refused_and_a_plain_one_gets_defaults() -> None:
    with pytest.raises(PluginError, match="'formats' is 'pte'"):
        registry.check("bundler", type("Stringy", (), {"name": "stringy", "formats": "pte"}))
    plain = type("Plain", (), {"name": "plain"})
    assert registry.check("bundler", plain) is plain
    assert (plain.formats, plain.asset_root, plain.template_dir) == (None, ".", None)
    assert plain().generate(Path("."), {}, Path(".")) == {}


def test_an_unknown_device_scheme_is_a_one_line_usage_error() -> None:
    from edge_pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="no transport answers the scheme 'foo'") as info:
        registry.transport_for("foo://bench")
    assert info.value.exit_code == EXIT_USAGE and "\n" not in str(info.value)
