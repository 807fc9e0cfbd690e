"""A plugin that breaks its contract is refused with one line naming it and the member, whether checked directly
or found through entry points like a third-party package. The contract is the kind's base class: its annotated
members and abstract methods; a plugin inherits the optional members' real defaults."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_pipeline import registry
from edge_pipeline.errors import EXIT_USAGE, PluginError
from edge_pipeline.plugins import (
    ArtifactTransform,
    Bundler,
    Exporter,
    Model,
    OnnxExporter,
    Runner,
    Session,
    Source,
    Transport,
)
from edge_pipeline.types import JsonObject


class GoodExporter(Exporter):
    """A third-party exporter with only the required members."""
    name = "good"
    format = "good"
    suffix = ".good"
    frameworks = ("torch",)
    precisions = {"fp32": None}
    runner = "litert"
    distributions = ("torch",)

    def export(self, model: Model, dest: Path) -> JsonObject:
        return {}


def broken(base: type = GoodExporter, **members: object) -> type:
    """A subclass of `base` with members replaced; a value of `...` removes the member (from the subclass and,
    for the test, from what it inherits by redefining the class from scratch)."""
    attrs = {k: v for k, v in vars(GoodExporter).items() if not k.startswith("__") and k != "_abc_impl"}
    attrs.update({k: v for k, v in members.items() if v is not ...})
    for k in [k for k, v in members.items() if v is ...]:
        attrs.pop(k, None)
    return type("BrokenExporter", (base.__mro__[1] if base is GoodExporter else base,), attrs)


CASES = {
    "missing": (dict(suffix=...), "'suffix' is missing (expected a non-empty str)"),
    "wrong-type": (dict(is_directory="yes"), "'is_directory' is 'yes' (expected a bool)"),
    "empty-name": (dict(format=""), "'format' is ''"),
    "bad-precisions": (dict(precisions={"fp32": 3}), "'precisions' is {'fp32': 3}"),
    "no-export": (dict(export=...), "'export' is missing (a method of Exporter)"),
    "unknown-transform": (dict(precisions={"int8": "no-such-transform"}), "'no-such-transform'"),
    "unknown-runner": (dict(runner="no-such-runner"), "'no-such-runner'"),
    "no-reason": (dict(runner=None), "'unvalidated_reason' does not say why"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_broken_exporter_is_refused_naming_it_and_the_member(case: str) -> None:
    members, says = CASES[case]
    with pytest.raises(PluginError) as info:
        registry.check("exporter", broken(**members))
    message = str(info.value)
    assert "BrokenExporter" in message and says in message, message
    assert "\n" not in message and info.value.exit_code == EXIT_USAGE


def test_a_plugin_that_is_not_a_subclass_of_its_kind_is_refused() -> None:
    plain = type("Plain", (), {k: v for k, v in vars(GoodExporter).items() if not k.startswith("_")})
    with pytest.raises(PluginError, match=r"not a subclass of edge_pipeline\.plugins\.exporter\.Exporter"):
        registry.check("exporter", plain)


def test_an_onnx_exporter_without_finish_is_refused() -> None:
    class NoFinish(OnnxExporter):
        name, format, suffix, frameworks = "nofinish", "nofinish", ".onnx", ("torch",)
        precisions, runner, distributions = {"fp32": None}, "onnxruntime", ()

        def to_onnx(self, model: Model, onnx_path: Path) -> None:
            return None

    with pytest.raises(PluginError, match="'finish' is missing"):
        registry.check("exporter", NoFinish)


def test_an_artifact_transform_without_apply_artifact_is_refused() -> None:
    class ArtifactOnly(ArtifactTransform):
        name, frameworks = "art", ("onnx",)

    with pytest.raises(PluginError, match="'apply_artifact' is missing"):
        registry.check("transform", ArtifactOnly)


def test_a_plugin_inherits_the_documented_defaults() -> None:
    cls = broken()
    assert registry.check("exporter", cls) is cls
    assert (cls.is_directory, cls.unvalidated_reason) == (False, None)

    class Plain(Runner):
        name, runtime, distribution = "plain", "Plain runtime", "numpy"

        def open(self, path: Path, threads: int, variant: str | None = None) -> Session:
            raise NotImplementedError

    runner = registry.check("runner", Plain)()
    assert (runner.variants, runner.suffixes, runner.signature(Path("x")), runner.bundle_files()) == ((None,), {},
                                                                                                    None, {})


@pytest.fixture()
def thirdparty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A package registered as pip would: one exporter lacks `suffix`, one source lacks its measures."""
    (tmp_path / "edgepipe_contract_plugins.py").write_text(
        "from edge_pipeline.plugins import Exporter, Source\n"
        "class Broken(Exporter):\n    name = 'broken'\n    format = 'broken'\n    frameworks = ('torch',)\n"
        "    precisions = {'fp32': None}\n    runner = 'litert'\n    distributions = ()\n"
        "    def export(self, model, dest):\n        return {}\n"
        "class HalfSource(Source):\n    name = 'half'\n    framework = 'torch'\n    suffixes = ('.half',)\n")
    info = tmp_path / "edgepipe_contract_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: edgepipe-contract-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[edgepipe.exporters]\nbroken = edgepipe_contract_plugins:Broken\n"
                                           "[edgepipe.sources]\nhalf = edgepipe_contract_plugins:HalfSource\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry._entry_points.cache_clear()
    yield
    monkeypatch.undo()
    registry._entry_points.cache_clear()


def test_a_broken_third_party_plugin_is_refused_when_loaded(thirdparty: None) -> None:
    with pytest.raises(PluginError, match=r"the exporter 'broken' of edgepipe-contract-plugins "
                                          r"\(edgepipe_contract_plugins:Broken\) .*'suffix'"):
        registry.load("exporter", "broken")
    loaded, broken_ones = registry.load_all(Exporter)   # the others still load
    assert set(broken_ones) == {"broken"} and "pte" in {e.name for e in loaded}
    with pytest.raises(PluginError, match=r"the source 'half' .*'batch_call' is missing"):
        registry.load("source", "half")
    assert set(registry.load_all(Source)[1]) == {"half"}


def test_a_transport_that_cannot_measure_is_refused() -> None:
    class Mute(Transport):
        name, schemes = "mute", ("mute",)

        def parse(self, url: str | None) -> str | None:
            return url

    with pytest.raises(PluginError, match="overrides neither 'wrap_runner' nor 'measure_artifact'") as info:
        registry.check("transport", Mute)
    assert "'mute'" in str(info.value) and "\n" not in str(info.value)
    bad_scheme = type("BadScheme", (Mute,), {"name": "bad", "schemes": ("not a scheme",),
                                             "wrap_runner": lambda self, runner, url: runner})
    with pytest.raises(PluginError, match="'not a scheme' is not a URL scheme"):
        registry.check("transport", bad_scheme)


def test_a_bundler_with_bad_formats_is_refused_and_a_plain_one_gets_defaults() -> None:
    with pytest.raises(PluginError, match="'formats' is 'pte'"):
        registry.check("bundler", type("Stringy", (Bundler,), {"name": "stringy", "formats": "pte"}))
    plain = type("Plain", (Bundler,), {"name": "plain"})
    assert registry.check("bundler", plain) is plain
    assert (plain.formats, plain.asset_root, plain.template_dir) == (None, ".", None)


def test_an_unknown_device_scheme_is_a_one_line_usage_error() -> None:
    from edge_pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="no transport answers the scheme 'foo'") as info:
        registry.transport_for("foo://bench")
    assert info.value.exit_code == EXIT_USAGE and "\n" not in str(info.value)
