"""What each plugin kind must declare, checked when a plugin is loaded (`registry.check`): a broken
third-party plugin then fails with one line naming it and the member, not an AttributeError inside a stage.

Required members have no default; optional ones take their documented default from the kind's base class in
`plugins.py` when a plugin does not inherit it, so the core reads every member as a plain attribute.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_pipeline.errors import PluginError
from edge_pipeline.plugins import BundlerBase, ExporterBase, RunnerBase, TransformBase, TransportBase
from edge_pipeline.types import OutputSpec, Target

APPLIES_TO = ("model", "artifact")


@dataclass(frozen=True)
class Member:
    name: str
    expects: str                        # said in the error message
    valid: Callable[[Any], bool]
    required: bool = True               # False: absent means the base class's default


def _str(v: Any) -> bool:
    return isinstance(v, str) and bool(v)


def _strs(v: Any) -> bool:
    return isinstance(v, tuple) and all(_str(x) for x in v)


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _optional(valid: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or valid(v)


def _str_map(values: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, dict) and all(_str(k) and values(x) for k, x in v.items())


def _pair(v: Any) -> bool:
    return isinstance(v, tuple) and len(v) == 2 and _strs(v)


def _variants(v: Any) -> bool:
    return isinstance(v, tuple) and bool(v) and all(x is None or _str(x) for x in v)


def _outputs(v: Any) -> bool:
    return isinstance(v, tuple) and bool(v) and all(isinstance(o, OutputSpec) for o in v)


STR, STRS, BOOL = ("a non-empty str", _str), ("a tuple of str", _strs), ("a bool", _bool)
METHOD, OPTIONAL_METHOD = ("a method", callable), ("None or a method", _optional(callable))

MEMBERS: dict[str, tuple[Member, ...]] = {
    "exporter": (
        Member("name", *STR), Member("format", *STR), Member("suffix", *STR), Member("frameworks", *STRS),
        Member("precisions", "a dict of precision -> transform name or None", _str_map(_optional(_str))),
        Member("runner", "a runner name or None", _optional(_str)), Member("distributions", *STRS),
        Member("export", *METHOD),
        Member("is_directory", *BOOL, required=False), Member("onnx_based", *BOOL, required=False),
        Member("unvalidated_reason", "None or a str", _optional(_str), required=False),
    ),
    "transform": (
        Member("name", *STR), Member("frameworks", *STRS), Member("needs_calibration", *BOOL),
        Member("distributions", *STRS, required=False),
        Member("applies_to", " or ".join(map(repr, APPLIES_TO)), lambda v: v in APPLIES_TO, required=False),
        Member("accuracy_budget", *BOOL, required=False),
        Member("bridge", "None or a (from, to) pair of frameworks", _optional(_pair), required=False),
        Member("calibration_methods", "a non-empty tuple of str", lambda v: _strs(v) and bool(v), required=False),
        Member("calibration_method", *STR, required=False),
    ),
    "runner": (
        Member("name", *STR), Member("runtime", *STR), Member("distribution", *STR), Member("open", *METHOD),
        Member("variants", "a non-empty tuple of str or None", _variants, required=False),
        Member("suffixes", "a dict of str -> format", _str_map(_str), required=False),
        Member("preload", *OPTIONAL_METHOD, required=False), Member("signature", *OPTIONAL_METHOD, required=False),
        Member("op_profile", *OPTIONAL_METHOD, required=False), Member("bundle_files", *METHOD, required=False),
    ),
    "target": (Member("name", *STR), Member("description", "a str", lambda v: isinstance(v, str)),
               Member("outputs", "a non-empty tuple of OutputSpec", _outputs)),
    "transport": (
        Member("name", *STR), Member("schemes", "a non-empty tuple of str", lambda v: _strs(v) and bool(v)),
        Member("parse", *METHOD), Member("in_process", *BOOL, required=False),
        Member("wrap_runner", *OPTIONAL_METHOD, required=False),
        Member("measure_artifact", *OPTIONAL_METHOD, required=False),
    ),
    "bundler": (
        Member("name", *STR), Member("formats", "None or a non-empty tuple of str",
                                     _optional(lambda v: _strs(v) and bool(v)), required=False),
        Member("asset_root", *STR, required=False),
        Member("template_dir", "None or a pathlib.Path", _optional(lambda v: isinstance(v, Path)), required=False),
        Member("generate", *METHOD, required=False),
    ),
}
BASES: dict[str, type] = {"exporter": ExporterBase, "transform": TransformBase, "runner": RunnerBase,
                          "transport": TransportBase, "bundler": BundlerBase}


def describe(kind: str, obj: Any, name: str | None) -> str:
    """How an error names a plugin: its entry-point name and where its object lives."""
    where = f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', type(obj).__qualname__)}"
    return f"the {kind} '{name or getattr(obj, 'name', '?')}' ({where})"


def verify(kind: str, obj: Any, name: str | None, registered: Callable[[str], list[str]]) -> Any:
    """Raises PluginError for the first broken member; fills absent optional members with their defaults.
    `registered(kind)` lists the names of installed plugins, for members that refer to other plugins."""
    who = describe(kind, obj, name)

    def refuse(problem: str) -> PluginError:
        return PluginError(f"{who} breaks the {kind} contract: {problem}")

    if kind == "target" and not isinstance(obj, Target):
        raise refuse(f"it is a {type(obj).__name__}, not an edge_pipeline.types.Target")
    for member in MEMBERS[kind]:
        if not hasattr(obj, member.name):
            if member.required:
                raise refuse(f"'{member.name}' is missing (expected {member.expects})")
            _adopt(obj, member.name, getattr(BASES[kind], member.name))
        if not member.valid(getattr(obj, member.name)):
            raise refuse(f"'{member.name}' is {getattr(obj, member.name)!r} (expected {member.expects})")
    if name is not None and obj.name != name:
        raise refuse(f"'name' is {obj.name!r}, but its entry point is named '{name}'")
    for problem in _references(kind, obj, registered):
        raise refuse(problem)
    return obj


def _references(kind: str, obj: Any, registered: Callable[[str], list[str]]) -> list[str]:
    """Members that only make sense together, or that name other plugins."""
    problems = []
    if kind == "exporter":
        for method in ("finish", "to_onnx") if obj.onnx_based else ():
            if not callable(getattr(obj, method, None)):
                problems.append(f"'{method}' is missing (an onnx_based exporter needs to_onnx(model, onnx_path) and "
                                f"finish(onnx_path, dest))")
        transforms = registered("transform")
        problems += [f"precision '{p}' names the transform '{t}', which is not registered"
                     for p, t in obj.precisions.items() if t is not None and t not in transforms]
        if obj.runner is not None and obj.runner not in registered("runner"):
            problems.append(f"'runner' names '{obj.runner}', which is not registered")
    elif kind == "transform":
        method = "apply" if obj.applies_to == "model" else "apply_artifact"
        if not callable(getattr(obj, method, None)):
            problems.append(f"'{method}' is missing (a transform that applies to the {obj.applies_to} needs it)")
        if obj.calibration_method not in obj.calibration_methods:
            problems.append(f"'calibration_method' {obj.calibration_method!r} is not in calibration_methods")
    elif kind == "transport":
        if obj.wrap_runner is None and obj.measure_artifact is None:
            problems.append("it offers neither 'wrap_runner' nor 'measure_artifact': it cannot measure anything")
        problems += [f"scheme {s!r} is not a URL scheme" for s in obj.schemes if not _scheme(s)]
    elif kind == "bundler" and obj.template_dir is not None and not obj.template_dir.is_dir():
        problems.append(f"'template_dir' {str(obj.template_dir)!r} is not a folder")
    return problems


def _scheme(text: str) -> bool:
    """RFC 3986 scheme characters: a letter, then letters, digits, + - ."""
    return text[:1].isascii() and text[:1].isalpha() and all(c.isascii() and (c.isalnum() or c in "+-.") for c in text)


def _adopt(obj: Any, member: str, default: Any) -> None:
    """Sets a default on a plugin that does not inherit its base class (a plain third-party class)."""
    if not isinstance(obj, type) and inspect.isfunction(default):
        default = default.__get__(obj, type(obj))     # a method default on a plugin instance
    setattr(obj, member, default)
