"""Turns a Target into concrete steps (exporter, transform, runner per output) before any work starts."""
from __future__ import annotations

from dataclasses import dataclass

from . import registry
from .config import Config, resolve_target
from .errors import ConfigError
from .types import OutputSpec, Target


@dataclass(frozen=True)
class Step:
    output: OutputSpec
    exporter: str
    transform: str | None
    runner: str
    suffix: str
    frameworks: tuple[str, ...]
    distributions: tuple[str, ...]
    needs_calibration: bool = False

    @property
    def filename(self) -> str:
        return f"{self.output.stem}{self.suffix}"


def load_target(name: str, config: Config) -> Target:
    """A built-in profile with the file's settings applied; unknown names list the valid ones."""
    if name in config.targets and name not in registry.names("target"):
        raise ConfigError(f"targets.{name}: only built-in targets can be configured for now "
                          f"({', '.join(registry.names('target'))})")
    base = registry.load("target", name)
    return resolve_target(base, config)


def plan(target: Target) -> list[Step]:
    steps: list[Step] = []
    seen: set[OutputSpec] = set()
    for output in target.outputs:
        if output in seen:
            continue
        seen.add(output)
        exporter = registry.load("exporter", output.format)
        if output.precision not in exporter.precisions:
            raise ConfigError(f"targets.{target.name}.formats: '{output.label}' is not offered: the "
                              f"{output.format} exporter supports {', '.join(sorted(exporter.precisions))}")
        transform = exporter.precisions[output.precision]
        needs_calibration = False
        if transform is not None:
            if transform not in registry.names("transform"):
                raise ConfigError(f"'{output.label}' needs the transform '{transform}', which is not installed")
            needs_calibration = bool(registry.load("transform", transform).needs_calibration)
        if exporter.runner not in registry.names("runner"):
            raise ConfigError(f"'{output.label}' is measured by the runner '{exporter.runner}', which is not installed")
        steps.append(Step(output, exporter.name, transform, exporter.runner, exporter.suffix,
                          tuple(exporter.frameworks), tuple(exporter.distributions), needs_calibration))
    if not steps:
        raise ConfigError(f"target '{target.name}' has no outputs: set targets.{target.name}.formats")
    return steps
