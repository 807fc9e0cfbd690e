"""Turns a Target into concrete steps: per output, the exporter, the transform that makes its precision, the
bridge a source of another framework needs, the runner that validates it, and the recipe (route) joining them.

Outputs are checked against the registered exporters before any work starts; once the source stage has told
the framework, each output is bound to the shortest route: an exporter for that framework, else a bridge into a
framework an exporter takes.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from edge_pipeline import registry
from edge_pipeline.config import Config, resolve_target
from edge_pipeline.errors import ConfigError, InputError, UnknownPlugin
from edge_pipeline.plugins import Bridge, Exporter, Recipe, Runner, Transform
from edge_pipeline.precision import Precision
from edge_pipeline.types import FEATURE_EXTRACTION, OutputSpec, Target


@dataclass(frozen=True)
class Step:
    output: OutputSpec
    exporter: str
    transform: str | None
    runner: str | None                   # None: no runtime here can run it (reported unvalidated)
    suffix: str
    distributions: tuple[str, ...]       # every package the route runs: the cache keys on their versions
    route: tuple[tuple[str, str], ...]   # (step kind, tool) of the recipe, in order
    needs_calibration: bool = False
    accuracy_budget: bool = False        # its transform can keep layers float to meet max-accuracy-drop
    calibration_methods: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ()     # post-training algorithms its transform offers
    group_sizes: tuple[int, ...] = ()    # group sizes its transform offers (grouped 4-bit weights)
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
        return resolve_target(registry.target(name), config, cli_budgets)
    if name not in config.targets:
        raise UnknownPlugin("target", name, target_names(config))
    parent = config.targets[name].get("extends")
    if not isinstance(parent, str) or parent not in builtin:
        raise ConfigError(f"targets.{name}.extends must name a built-in target ({', '.join(builtin)}), got {parent!r}")
    base = registry.target(parent)
    return resolve_target(replace(base, name=name, description=f"{name} (extends {parent})"), config, cli_budgets)


def check_outputs(target: Target, task: str | None = None) -> list[OutputSpec]:
    """Every output (of `task`; None: of every task the target lists) names a known format and a known Precision
    that some exporter of that format offers for that task."""
    exporters, broken = registry.load_all(Exporter)
    listed = target.outputs_for(task) if task is not None else \
        (*target.outputs, *(o for _, outputs in target.task_outputs for o in outputs))
    outputs: list[OutputSpec] = []
    for output in dict.fromkeys(listed):     # before the source says the task, any task's exporter will do
        offering = [e for e in exporters if e.format == output.format and (task is None or _exports(e, task))]
        if not offering:
            if output.format in broken:          # its exporter is installed but does not load: say why
                raise broken[output.format]
            if any(e.format == output.format for e in exporters):
                formats = sorted({e.format for e in exporters if _exports(e, task)})
                raise InputError(f"targets.{target.name}: '{output.label}' has no exporter for {task} models "
                                 f"(formats that export them: {', '.join(formats) or 'none'})")
            raise UnknownPlugin("format", output.format, {e.format for e in exporters} | set(broken))
        Precision.parse(output.precision.name, f"targets.{target.name}.formats: '{output.label}'", buildable=True)
        precisions = sorted({p for e in offering for p in e.precisions})
        if output.precision.name not in precisions:
            kind = "" if task is None or task in PER_OUTPUT_TASKS else f" of {task} models"
            raise ConfigError(f"targets.{target.name}.formats: '{output.label}' is not offered: the "
                              f"{output.format} exporters{kind} support {', '.join(precisions)}")
        outputs.append(output)
    if not outputs:
        raise ConfigError(f"target '{target.name}' has no outputs: set targets.{target.name}.formats")
    return outputs


PER_OUTPUT_TASKS = ("classification", "tensor", FEATURE_EXTRACTION)   # plain models, judged output by output


def _exports(exporter: type[Exporter], task: str) -> bool:
    """Models judged per output (classifiers, tensors, encoders' embeddings) are exported alike: an exporter of
    one exports the others."""
    return task in exporter.tasks or (task in PER_OUTPUT_TASKS and bool(set(PER_OUTPUT_TASKS) & set(exporter.tasks)))


def bind(target: Target, framework: str, task: str = "tensor") -> list[Step]:
    """Each output's shortest route from a `framework` model of `task`."""
    exporters = registry.load_all(Exporter)[0]
    bridges = registry.load_all(Bridge)[0]
    steps = []
    for output in check_outputs(target, task):
        offering = [e for e in exporters if e.format == output.format and output.precision.name in e.precisions
                    and _exports(e, task)]
        routes: list[tuple[type[Bridge] | None, type[Exporter]]] = [(None, e) for e in offering
                                                                    if framework in e.frameworks]
        routes += [(b, e) for b in bridges if b.source_framework == framework
                   for e in offering if b.target_framework in e.frameworks]
        if not routes:
            takes = ", ".join(sorted({f for e in offering for f in e.frameworks}))
            raise InputError(f"'{output.label}' cannot be built from a {framework} {task} model: no exporter or "
                             f"bridge reaches it (exporters take {takes})")
        steps.append(_step(output, *routes[0]))
    _refuse_shared_names(steps)
    return steps


def _refuse_shared_names(steps: list[Step]) -> None:
    """Two outputs written under one name would overwrite each other's artifact."""
    named: dict[str, str] = {}
    for step in steps:
        other = named.setdefault(step.filename, step.output.label)
        if other != step.output.label:
            raise ConfigError(f"'{other}' and '{step.output.label}' would both be written as {step.filename}: "
                              f"their exporters declare the same suffix")


def _step(output: OutputSpec, bridge: type[Bridge] | None, exporter: type[Exporter]) -> Step:
    transform_name = exporter.precisions[output.precision.name]
    transform = registry.plugin(Transform, transform_name)
    recipe: Recipe = exporter().recipe(bridge() if bridge else None, transform() if transform else None)
    problems = recipe.problems()
    if problems:
        raise ConfigError(f"'{output.label}': the exporter '{exporter.name}' declares a broken recipe: "
                          f"{'; '.join(problems)}")
    runner = registry.plugin(Runner, exporter.runner)
    validated_by = (runner.distribution,) if runner is not None else ()
    return Step(output, exporter.name, transform_name, exporter.runner, exporter.suffix,
                tuple(dict.fromkeys((*exporter.distributions, *recipe.distributions, *validated_by))),
                tuple((s.kind.value, s.tool) for s in recipe.steps),
                needs_calibration=bool(transform and transform.needs_calibration),
                accuracy_budget=bool(transform and transform.accuracy_budget),
                calibration_methods=transform.calibration_methods if transform else (),
                algorithms=transform.algorithms if transform else (),
                group_sizes=transform.group_sizes if transform else (),
                bridge=bridge.name if bridge else None,
                unvalidated_reason=exporter.unvalidated_reason if exporter.runner is None else None)


def runners_for(target: Target) -> list[str]:
    """The runtimes that would measure a target's outputs (any framework, any task)."""
    exporters = registry.load_all(Exporter)[0]
    tasks = ("tensor", *(name for name, _ in target.task_outputs))
    return sorted({e.runner for task in tasks for o in target.outputs_for(task) for e in exporters
                   if e.format == o.format and e.runner and _exports(e, task)})
