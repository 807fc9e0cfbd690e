"""Turns a Target into concrete steps (bridge, transform, exporter, runner per output).

Outputs are checked against the registered exporters before any work starts; once the source stage has
told the framework, each output is bound to an exporter for that framework, or to a bridge transform
(e.g. keras -> torch through ONNX) followed by an exporter for the bridged framework.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from edge_pipeline import registry
from edge_pipeline.config import Config, resolve_target
from edge_pipeline.errors import ConfigError, InputError, UnknownPlugin
from edge_pipeline.precision import Precision
from edge_pipeline.types import OutputSpec, Target


@dataclass(frozen=True)
class Step:
    output: OutputSpec
    exporter: str
    transform: str | None
    runner: str | None                   # None: no runtime here can run it (reported unvalidated)
    suffix: str
    frameworks: tuple[str, ...]
    distributions: tuple[str, ...]
    needs_calibration: bool = False
    bridge: str | None = None
    unvalidated_reason: str | None = None

    @property
    def filename(self) -> str:
        return f"{self.output.stem}{self.suffix}"


def target_names(config: Config) -> list[str]:
    return sorted(set(registry.names("target")) | set(config.targets))


def load_target(name: str, config: Config, cli_budgets: dict[str, float] | None = None) -> Target:
    """A built-in profile, or a user-defined one that `extends` a built-in, with the file's settings
    applied; unknown names list the valid ones."""
    builtin = registry.names("target")
    if name in builtin:
        return resolve_target(registry.load("target", name), config, cli_budgets)
    if name not in config.targets:
        raise UnknownPlugin("target", name, target_names(config))
    parent = config.targets[name].get("extends")
    if parent is None or parent not in builtin:
        raise ConfigError(f"targets.{name}.extends must name a built-in target ({', '.join(builtin)}), got {parent!r}")
    base = registry.load("target", parent)
    return resolve_target(replace(base, name=name, description=f"{name} (extends {parent})"), config, cli_budgets)


def _exporters() -> tuple[list[Any], dict[str, Exception]]:
    return registry.load_all("exporter")


def _bridges() -> list[Any]:
    return [t for t in registry.load_all("transform")[0] if t.bridge]


def check_outputs(target: Target) -> list[OutputSpec]:
    """Every output names a known format and a known Precision that some exporter of that format offers."""
    exporters, broken = _exporters()
    outputs: list[OutputSpec] = []
    for output in dict.fromkeys(target.outputs):
        offering = [e for e in exporters if e.format == output.format]
        if not offering:
            for name, error in broken.items():
                if name == output.format or name.startswith(f"{output.format}-"):
                    raise error
            raise UnknownPlugin("format", output.format, {e.format for e in exporters} | set(broken))
        Precision.parse(output.precision, f"targets.{target.name}.formats: '{output.label}'", buildable=True)
        precisions = sorted({p for e in offering for p in e.precisions})
        if output.precision not in precisions:
            raise ConfigError(f"targets.{target.name}.formats: '{output.label}' is not offered: the "
                              f"{output.format} exporters support {', '.join(precisions)}")
        outputs.append(output)
    if not outputs:
        raise ConfigError(f"target '{target.name}' has no outputs: set targets.{target.name}.formats")
    return outputs


def bind(target: Target, framework: str) -> list[Step]:
    exporters, bridges = _exporters()[0], _bridges()
    steps = []
    for output in check_outputs(target):
        offering = [e for e in exporters if e.format == output.format and output.precision in e.precisions]
        direct = [e for e in offering if framework in e.frameworks]
        bridge = None
        if direct:
            exporter = direct[0]
        else:
            routes = [(b, e) for b in bridges if b.bridge[0] == framework for e in offering if b.bridge[1] in e.frameworks]
            if not routes:
                raise InputError(f"'{output.label}' cannot be built from a {framework} model: no exporter or "
                                 f"bridge reaches it (exporters take {', '.join(sorted({f for e in offering for f in e.frameworks}))})")
            bridge_cls, exporter = routes[0]
            bridge = bridge_cls.name
        steps.append(_step(output, exporter, bridge))
    return steps


def _step(output: OutputSpec, exporter: Any, bridge: str | None) -> Step:
    transform = exporter.precisions[output.precision]
    needs_calibration = False
    if transform is not None:
        if transform not in registry.names("transform"):
            raise ConfigError(f"'{output.label}' needs the transform '{transform}', which is not installed")
        needs_calibration = bool(registry.load("transform", transform).needs_calibration)
    if exporter.runner is not None and exporter.runner not in registry.names("runner"):
        raise ConfigError(f"'{output.label}' is measured by the runner '{exporter.runner}', which is not installed")
    distributions = tuple(exporter.distributions)
    if bridge:
        distributions += tuple(registry.load("transform", bridge).distributions)
    return Step(output, exporter.name, transform, exporter.runner, exporter.suffix, tuple(exporter.frameworks),
                distributions, needs_calibration, bridge,
                exporter.unvalidated_reason if exporter.runner is None else None)


def runners_for(target: Target) -> list[str]:
    """The runtimes that would measure a target's outputs (any framework)."""
    exporters = _exporters()[0]
    return sorted({e.runner for o in target.outputs for e in exporters if e.format == o.format and e.runner})
