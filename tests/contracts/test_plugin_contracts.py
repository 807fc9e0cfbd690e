"""Every registered plugin of every kind (built-in or third-party) passes the same contract checks, through
the same discovery a build uses (`registry.load_all`). Nothing is converted: only plugin modules are imported."""
from __future__ import annotations

import inspect
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from edge_pipeline import contracts, registry

SAMPLE_APPS = Path(__file__).resolve().parents[2] / "sample_apps"
PLUGINS = [(kind, name) for kind in registry.KINDS for name in registry.names(kind)]


@lru_cache(maxsize=None)
def loaded(kind: str) -> tuple[dict[str, Any], dict[str, Exception]]:
    objs, broken = registry.load_all(kind)
    return {obj.name: obj for obj in objs}, broken


def plugin(kind: str, name: str) -> Any:
    objs, broken = loaded(kind)
    assert name not in broken, f"{kind} '{name}' does not load: {broken[name]}"
    return objs[name]


@pytest.mark.parametrize("kind", list(registry.KINDS))
def test_every_registered_plugin_loads(kind: str) -> None:
    objs, broken = loaded(kind)
    assert not broken, broken
    assert sorted(objs) == registry.names(kind)


@pytest.mark.parametrize("kind,name", PLUGINS, ids=[f"{k}:{n}" for k, n in PLUGINS])
def test_plugin_meets_its_contract(kind: str, name: str) -> None:
    obj = plugin(kind, name)
    assert registry.check(kind, obj, name) is obj
    for member in contracts.MEMBERS[kind]:   # declared or inherited: the core reads them plainly
        assert member.valid(getattr(obj, member.name)), f"{kind} '{name}'.{member.name}: expected {member.expects}"


EXPORTERS = [n for k, n in PLUGINS if k == "exporter"]
TRANSFORMS = [n for k, n in PLUGINS if k == "transform"]
RUNNERS = [n for k, n in PLUGINS if k == "runner"]
TARGETS = [n for k, n in PLUGINS if k == "target"]


@pytest.mark.parametrize("name", EXPORTERS)
def test_exporter_precisions_and_runner_fit_together(name: str) -> None:
    exporter = plugin("exporter", name)
    for precision, transform_name in exporter.precisions.items():
        if transform_name is None:
            continue
        transform = plugin("transform", transform_name)
        assert set(transform.frameworks) & set(exporter.frameworks), (precision, transform_name)
        if exporter.onnx_based:   # the export stage quantizes the ONNX file between to_onnx and finish
            assert transform.applies_to == "artifact", (precision, transform_name)
    if exporter.onnx_based:
        assert callable(exporter.finish)
    if exporter.runner is None:
        assert exporter.unvalidated_reason, "an exporter without a runner says why its artifacts are unvalidated"
        return
    runner = plugin("runner", exporter.runner)
    if not exporter.is_directory:   # `edgepipe profile` finds the runner by the artifact's suffix
        assert runner.suffixes.get(exporter.suffix) == exporter.format


@pytest.mark.parametrize("name", TRANSFORMS)
def test_transform_members_are_consistent(name: str) -> None:
    transform = plugin("transform", name)
    instance = registry.create("transform", name)
    if transform.bridge is not None:
        assert transform.applies_to == "model" and transform.bridge[0] in transform.frameworks
    if transform.accuracy_budget:   # the export stage sets these on the instance
        assert hasattr(instance, "max_accuracy_drop") and hasattr(instance, "sensitivity")
    assert instance.calibration_method in transform.calibration_methods


@pytest.mark.parametrize("name", RUNNERS)
def test_runner_open_takes_its_variants(name: str) -> None:
    runner = plugin("runner", name)
    params = inspect.signature(runner.open).parameters
    assert len(params) >= (4 if runner.variants != (None,) else 3)   # self, path, threads[, variant]


@pytest.mark.parametrize("name", TARGETS)
def test_target_outputs_are_offered_and_bundle_exists(name: str) -> None:
    target = plugin("target", name)
    exporters = loaded("exporter")[0].values()
    for output in target.outputs:
        assert any(e.format == output.format and output.precision in e.precisions for e in exporters), output.label
    assert target.bundle is None or (SAMPLE_APPS / target.bundle).is_dir()


TRANSPORTS = [n for k, n in PLUGINS if k == "transport"]
BUNDLERS = [n for k, n in PLUGINS if k == "bundler"]


def test_no_device_is_the_local_transport_and_every_scheme_has_one_owner() -> None:
    assert registry.transport_for(None).name == "local"
    schemes = [s for name in TRANSPORTS for s in plugin("transport", name).schemes]
    assert len(schemes) == len(set(schemes)), schemes


@pytest.mark.parametrize("name", TRANSPORTS)
def test_transport_measures_somehow_and_answers_its_schemes(name: str) -> None:
    transport = plugin("transport", name)
    assert transport.wrap_runner is not None or transport.measure_artifact is not None
    for scheme in transport.schemes:
        assert registry.url_scheme(f"{scheme}://x") == scheme
    if transport.wrap_runner is not None:   # self, runner, url
        assert len(inspect.signature(transport.wrap_runner).parameters) >= 3


@pytest.mark.parametrize("name", BUNDLERS)
def test_bundler_template_exists_and_runs_registered_formats(name: str) -> None:
    bundler = plugin("bundler", name)
    template = bundler.template_dir or SAMPLE_APPS / bundler.name
    assert template.is_dir(), template
    root = Path(bundler.asset_root)   # inside the bundle, created by bundling when the template lacks it
    assert not root.is_absolute() and ".." not in root.parts, bundler.asset_root
    formats = {e.format for e in loaded("exporter")[0].values()}
    assert bundler.formats is None or set(bundler.formats) <= formats, bundler.formats
    assert len(inspect.signature(bundler.generate).parameters) >= 4   # self, dest, report, folder


@pytest.mark.parametrize("name", TARGETS)
def test_target_bundle_has_a_bundler(name: str) -> None:
    target = plugin("target", name)
    assert target.bundle is None or target.bundle in BUNDLERS
