"""One declaration per plugin kind: the kind's base class. Its annotated class members are the contract and its
abstract methods are the required methods; `verify` checks a loaded plugin against them, so a broken third-party
plugin fails with one line naming it and the member, not with an AttributeError deep inside a stage.

Optional members are the ones the base class gives a value (a default attribute or a real method); a plugin
inherits them, so the core reads every member plainly.
"""
from __future__ import annotations

import inspect
import types
import typing
from abc import ABC
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Union, get_args, get_origin, get_type_hints

from edge_pipeline.errors import PluginError

MISSING = object()


class Plugin(ABC):
    """Base of every plugin kind. A kind names itself (`kind`); a plugin names itself (`name`), and that name
    must match its entry point's."""

    kind: ClassVar[str] = ""
    name: ClassVar[str]

    @classmethod
    def declaration_problems(cls) -> list[str]:
        """Rules between members that annotations cannot say (kinds extend it); each string is one problem."""
        return []

    @classmethod
    def references(cls) -> list[tuple[str, str]]:
        """(kind, name) of other plugins this one names: each must be registered."""
        return []


def contract(base: type) -> dict[str, object]:
    """The members a kind declares: every annotated class member of its base classes, unwrapped from ClassVar."""
    hints = get_type_hints(base, globalns=_namespace(base))
    return {name: _unwrap(hint) for name, hint in hints.items() if name != "kind" and not name.startswith("_")}


def verify(base: type[Plugin], obj: object, entry_name: str | None,
           registered: Callable[[str], list[str]]) -> type[Plugin]:
    """Returns `obj` when it is a subclass of `base` meeting every member; else raises a one-line PluginError."""
    who = describe(base.kind, obj, entry_name)

    def refuse(problem: str) -> PluginError:
        return PluginError(f"{who} breaks the {base.kind} contract: {problem}")

    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise refuse(f"it is {_what(obj)}, not a subclass of {base.__module__}.{base.__qualname__}")
    for member, annotation in contract(base).items():
        value = inspect.getattr_static(obj, member, MISSING)
        if value is MISSING:
            raise refuse(f"'{member}' is missing (expected {expects(annotation)})")
        if isinstance(value, (classmethod, staticmethod)):
            continue
        if not conforms(value, annotation):
            raise refuse(f"'{member}' is {value!r} (expected {expects(annotation)})")
    missing = sorted(obj.__abstractmethods__)
    if missing:
        raise refuse(f"'{missing[0]}' is missing (a method of {base.__qualname__})")
    if entry_name is not None and obj.name != entry_name:
        raise refuse(f"'name' is {obj.name!r}, but its entry point is named '{entry_name}'")
    for problem in obj.declaration_problems():
        raise refuse(problem)
    for kind, name in obj.references():
        if name not in registered(kind):
            raise refuse(f"it names the {kind} '{name}', which is not registered")
    return obj


def describe(kind: str, obj: object, name: str | None) -> str:
    """How an error names a plugin: its entry-point name and where its object lives."""
    cls = obj if isinstance(obj, type) else type(obj)
    plugin_name = name or inspect.getattr_static(cls, "name", "?")
    return f"the {kind} '{plugin_name}' ({cls.__module__}:{cls.__qualname__})"


def conforms(value: object, annotation: object) -> bool:
    """Whether a declared value fits its annotation (the shapes plugin members use: str, bool, numbers, paths,
    optionals, tuples, dicts, callables and classes). A declared str must not be empty."""
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is typing.Any or annotation is object:
        return True
    if annotation is type(None) or annotation is None:
        return value is None
    if origin in (Union, types.UnionType):
        return any(conforms(value, a) for a in args)
    if annotation is str:
        return isinstance(value, str) and bool(value)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation in (int, float):
        return isinstance(value, (int, float) if annotation is float else int) and not isinstance(value, bool)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(conforms(v, args[0]) for v in value)
        return len(args) == len(value) and all(conforms(v, a) for v, a in zip(value, args))
    if origin is dict:
        return isinstance(value, dict) and all(conforms(k, args[0]) and conforms(v, args[1]) for k, v in value.items())
    if origin is not None and origin.__module__ == "collections.abc" and origin.__name__ == "Callable":
        return callable(value)
    if origin is type:
        return isinstance(value, type) and issubclass(value, args[0])
    return isinstance(value, annotation) if isinstance(annotation, type) else True


def expects(annotation: object) -> str:
    """An annotation in words, for error messages."""
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is type(None) or annotation is None:
        return "None"
    if origin in (Union, types.UnionType):
        return " or ".join(expects(a) for a in args)
    if annotation is str:
        return "a non-empty str"
    if annotation is Path:
        return "a pathlib.Path"
    if origin is tuple:
        return f"a tuple of {_plural(args[0])}" if len(args) == 2 and args[1] is Ellipsis else \
            f"a ({', '.join(expects(a) for a in args)}) tuple"
    if origin is dict:
        return f"a dict of {expects(args[0]).removeprefix('a ')} -> {expects(args[1]).removeprefix('a ')}"
    if origin is not None and origin.__name__ == "Callable":
        return "a callable"
    if isinstance(annotation, type):
        return f"a {annotation.__name__}"
    return str(annotation)


def _plural(annotation: object) -> str:
    return expects(annotation).removeprefix("a non-empty ").removeprefix("a ")


def _unwrap(hint: object) -> object:
    return get_args(hint)[0] if get_origin(hint) is ClassVar else hint


def _namespace(base: type) -> dict[str, object]:
    """Globals to resolve string annotations: every module along the kind's class hierarchy."""
    namespace: dict[str, object] = {}
    for cls in reversed(base.__mro__):
        module = inspect.getmodule(cls)
        if module is not None:
            namespace.update(vars(module))
    return namespace


def _what(obj: object) -> str:
    return f"the class {obj.__qualname__}" if isinstance(obj, type) else f"a {type(obj).__name__} object"
