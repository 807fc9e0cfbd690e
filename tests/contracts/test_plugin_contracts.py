"""Every registered plugin of every kind (built-in or third-party) passes the same contract checks, through
the same discovery a build uses (`registry.load_all`). Nothing is converted: only plugin modules are imported."""
from __future__ import annotations

import inspect
from functools import lru_cache
from pathlib import Path

import pytest

from edge_pipeline import registry
from edge_pipeline.plugins import (
    ArtifactTransform,
    Bridge,
    Bundler,
    Exporter,
    ModelTransform,
    OnnxExporter,
    Plugin,
    Pruner,
    Runner,
    Source,
    Transform,
    Transport,
)
from edge_pipeline.plugins.contract import conforms, contract
from edge_pipeline.types import Target

SAMPLE_APPS = Path(__file__).resolve().parents[2] / "sample_apps"
PLUGINS = [(kind, name) for kind in registry.KINDS for name in registry.names(kind)]
BASES: dict[str, type[Plugin]] = registry.BASES


@lru_cache(maxsize=None)
def loaded(kind: str) -> tuple[dict[str, type[Plugin]], dict[str, Exception]]:
    objs, broken = registry.load_all(BASES[kind])
    return {obj.name: obj for obj in objs}, broken


def plugin(kind: str, name: str) -> type:
    objs, broken = loaded(kind)
    assert name not in broken, f"{kind} '{name}' does not load: {broken[name]}"
    return objs[name]


@pytest.mark.parametrize("kind", [k for k in registry.KINDS if k != "target"])
def test_every_registered_plugin_loads(kind: str) -> None:
    objs, broken = loaded(kind)
    assert not broken, broken
    assert sorted(objs) == registry.names(kind)


def assert_meets_contract(kind: str, cls: type, name: str) -> None:
    """The checks every plugin of every kind goes through, built-in or third-party."""
    assert registry.check(kind, cls, name) is cls
    assert issubclass(cls, BASES[kind]) and not inspect.isabstract(cls)
    for member, annotation in contract(BASES[kind]).items():   # declared or inherited: the core reads them plainly
        value = inspect.getattr_static(cls, member)
        assert callable(value) or isinstance(value, (classmethod, staticmethod)) or conforms(value, annotation), \
            f"{kind} '{name}'.{member} = {value!r}"
    if issubclass(cls, Exporter):
        for precision, transform_name in cls.precisions.items():
            transform = registry.plugin(Transform, transform_name)
            assert cls().recipe(None, transform() if transform else None).problems() == [], precision


@pytest.mark.parametrize("kind,name", [p for p in PLUGINS if p[0] != "target"],
                         ids=[f"{k}:{n}" for k, n in PLUGINS if k != "target"])
def test_plugin_meets_its_contract(kind: str, name: str) -> None:
    assert_meets_contract(kind, plugin(kind, name), name)


def test_a_third_party_distribution_goes_through_the_same_checks(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A working plugin package installed in the test (as pip would) is discovered and checked like the built-ins."""
    from ..test_third_party_plugins import install_bench

    install_bench(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    registry._entry_points.cache_clear()
    try:
        theirs = [(kind, info.name) for kind in registry.KINDS for info in registry.describe(kind)
                  if info.distribution == "edgepipe-bench"]
        assert sorted(theirs) == [("exporter", "onnx-copy"), ("source", "bench-onnx"), ("transport", "loopback")]
        for kind, name in theirs:
            assert_meets_contract(kind, registry.load(kind, name), name)
    finally:
        monkeypatch.undo()
        registry._entry_points.cache_clear()


EXPORTERS = [n for k, n in PLUGINS if k == "exporter"]
TRANSFORMS = [n for k, n in PLUGINS if k == "transform"]
TARGETS = [n for k, n in PLUGINS if k == "target"]
TRANSPORTS = [n for k, n in PLUGINS if k == "transport"]
BUNDLERS = [n for k, n in PLUGINS if k == "bundler"]
SOURCES = [n for k, n in PLUGINS if k == "source"]


@pytest.mark.parametrize("name", EXPORTERS)
def test_exporter_recipes_fit_together_for_every_precision(name: str) -> None:
    exporter = plugin("exporter", name)
    for precision, transform_name in exporter.precisions.items():
        transform = plugin("transform", transform_name) if transform_name else None
        if transform is not None:
            assert set(transform.frameworks) & set(exporter.frameworks), (precision, transform_name)
            if issubclass(exporter, OnnxExporter):   # ONNX transforms run on the ONNX file before `finish`
                assert issubclass(transform, ArtifactTransform), (precision, transform_name)
        recipe = exporter().recipe(None, transform() if transform else None)
        assert recipe.problems() == [], (precision, recipe.problems())
        assert transform is None or transform_name in [s.tool for s in recipe.steps]
    if exporter.runner is None:
        assert exporter.unvalidated_reason, "an exporter without a runner says why its artifacts are unvalidated"
        return
    runner = plugin("runner", exporter.runner)
    if not exporter.is_directory:   # `edgepipe profile` finds the runner by the artifact's suffix
        assert runner.suffixes.get(exporter.suffix) == exporter.format


@pytest.mark.parametrize("name", TRANSFORMS)
def test_transform_is_exactly_one_kind_and_its_calibration_default_is_offered(name: str) -> None:
    transform = plugin("transform", name)
    kinds = [k for k in (ModelTransform, ArtifactTransform) if issubclass(transform, k)]
    assert len(kinds) == 1, kinds
    if issubclass(transform, Bridge):
        assert transform.source_framework in transform.frameworks
        assert transform.source_framework != transform.target_framework
    if issubclass(transform, Pruner):
        assert transform.prune_kind in ("structured", "unstructured")
    assert transform.calibration_methods and issubclass(transform, Transform)


@pytest.mark.parametrize("name", TARGETS)
def test_target_outputs_are_offered_and_bundle_exists(name: str) -> None:
    target = registry.target(name)
    assert isinstance(target, Target) and target.outputs
    exporters = loaded("exporter")[0].values()
    for output in target.outputs:
        assert any(e.format == output.format and output.precision.name in e.precisions for e in exporters), output.label
    assert target.bundle is None or (SAMPLE_APPS / target.bundle).is_dir()
    assert target.bundle is None or target.bundle in BUNDLERS


def test_no_device_is_the_local_transport_and_every_scheme_has_one_owner() -> None:
    assert registry.transport_for(None).name == "local"
    schemes = [s for name in TRANSPORTS for s in plugin("transport", name).schemes]
    assert len(schemes) == len(set(schemes)), schemes


@pytest.mark.parametrize("name", TRANSPORTS)
def test_transport_measures_somehow_and_answers_its_schemes(name: str) -> None:
    transport = plugin("transport", name)
    assert issubclass(transport, Transport) and (transport.runs_runners() or transport.measures_files())
    for scheme in transport.schemes:
        assert registry.url_scheme(f"{scheme}://x") == scheme


@pytest.mark.parametrize("name", BUNDLERS)
def test_bundler_template_exists_and_runs_registered_formats(name: str) -> None:
    bundler = plugin("bundler", name)
    assert issubclass(bundler, Bundler)
    template = bundler.template_dir or SAMPLE_APPS / bundler.name
    assert template.is_dir(), template
    root = Path(bundler.asset_root)   # inside the bundle, created by bundling when the template lacks it
    assert not root.is_absolute() and ".." not in root.parts, bundler.asset_root
    formats = {e.format for e in loaded("exporter")[0].values()}
    assert bundler.formats is None or set(bundler.formats) <= formats, bundler.formats


@pytest.mark.parametrize("name", SOURCES)
def test_source_recognises_something_and_sources_do_not_overlap(name: str) -> None:
    source = plugin("source", name)
    assert issubclass(source, Source)
    assert source.suffixes or source.layouts or source.factory_packages
    others = [plugin("source", n) for n in SOURCES if n != name]
    assert not set(source.suffixes) & {s for o in others for s in o.suffixes}


@pytest.mark.parametrize("name", [n for k, n in PLUGINS if k == "runner"])
def test_runner_is_a_runner(name: str) -> None:
    runner = plugin("runner", name)
    assert issubclass(runner, Runner) and runner.variants
