"""Builds the live source Model and its DataBundle from a SourceSpec (inside a worker process).

The core knows no framework: an installed Source plugin claims a model file by its suffix, a folder by a marker
file in it, or a factory's result by the packages of its classes; the built-in examples are entry points too.
So a third-party source (say, JAX) needs no change here."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge_pipeline import registry
from edge_pipeline.errors import InputError, MissingDependency, PluginError, UnknownPlugin
from edge_pipeline.plugins import DataBundle, Model, OwnData, Source
from edge_pipeline.sources.user_code import call_user, resolve_callable
from edge_pipeline.sources.user_data import load_bundle
from edge_pipeline.tensors import Tensors
from edge_pipeline.types import TEXT_GENERATION, JsonObject, SourceSpec

DEFAULT_EXAMPLE = "torch-digits"

__all__ = ["DEFAULT_EXAMPLE", "call_user", "check_example", "load_source", "resolve_callable", "source_for"]


def check_example(spec: SourceSpec) -> None:
    """Cheap check in the parent process, before any worker starts: reads entry points, imports nothing."""
    if spec.model is None:
        name = spec.example or DEFAULT_EXAMPLE
        known = registry.names(registry.EXAMPLES_GROUP)
        if name not in known:
            raise UnknownPlugin("example", name, known)


def load_source(spec: SourceSpec, store: Path | None = None) -> tuple[Model, DataBundle]:
    """The live model and its data: the user's batches are checked and spooled into `store` (None: only the
    example, for workers that read the stored data)."""
    check_example(spec)
    if spec.model is None:
        return registry.example(spec.example or DEFAULT_EXAMPLE)()
    model, example = _load_model(spec, spec.model)
    _check_language_keys(spec, model.task)
    own = model.config(OwnData)
    if own is not None:      # the source made its data from the model's own files (a language model's text)
        return model, own.data
    return model, load_bundle(spec, example, store)


def _check_language_keys(spec: SourceSpec, task: str | None) -> None:
    """`prompts` and `task` describe a language model; set on anything else they would be silently ignored."""
    kind = f"a {task} model" if task else "not a language model"
    if spec.prompts and task != TEXT_GENERATION:
        raise InputError(f"prompts are continued by text-generation models; model '{spec.model}' is {kind}")
    if spec.task is not None and spec.task != task:
        raise InputError(f"task = '{spec.task}' applies to language models; model '{spec.model}' is {kind}")


def source_for(framework: str) -> Source:
    """The installed source of a framework ("torch", "tensorflow", "onnx"): it measures and runs models of it."""
    sources, broken = registry.load_all(Source)
    # the framework's most general source (torch, not the language-model sources built on it)
    chosen = min((cls for cls in sources if cls.framework == framework), key=lambda cls: len(cls.__mro__),
                 default=None)
    if chosen is None:
        known = ", ".join(f"{cls.framework} ({cls.name})" for cls in sources) or "none"
        raise PluginError(f"no installed source handles {framework} models (sources: {known})" + _broken(broken))
    return chosen()


def _load_model(spec: SourceSpec, ref: str) -> tuple[Model, Tensors]:
    path = Path(spec.base_dir) / ref
    if _names_factory(ref, path):
        return _from_factory(spec, ref)
    sources, broken = registry.load_all(Source)
    source = next((s for s in (cls() for cls in sources) if s.recognises_file(path)), None)
    if source is None:
        raise InputError(_unrecognised(ref, path, sources, broken))
    with _framework_of(source):
        return source.load_file(spec, path)


def _names_factory(ref: str, path: Path) -> bool:
    """`package.module:function`; anything with a path separator, or that exists, is a file or folder."""
    return ":" in ref and "/" not in ref and "\\" not in ref and not path.exists()


def _from_factory(spec: SourceSpec, ref: str) -> tuple[Model, Tensors]:
    obj = call_user(resolve_callable(ref, "model factory", spec.base_dir), ref, "model factory")
    provenance: JsonObject = {"kind": "factory", "factory": ref}
    sources, broken = registry.load_all(Source)
    source = next((s for s in (cls() for cls in sources) if s.recognises_object(obj)), None)
    if source is None:
        takes = " or ".join(f"a {' or '.join(cls.factory_packages)} model ({cls.name} source)"
                          for cls in sources if cls.factory_packages)
        raise InputError(f"model factory '{ref}' returned {type(obj).__name__}, expected {takes or 'a model'}"
                         + _broken(broken))
    with _framework_of(source):
        return source.from_object(obj, spec, provenance)


@contextmanager
def _framework_of(source: Source) -> Iterator[None]:
    """A source imports its framework on first use: a missing one is an environment problem, named as such."""
    try:
        yield
    except ModuleNotFoundError as exc:
        missing = (exc.name or "a module").split(".")[0]
        raise MissingDependency(missing, f"the {source.name} source") from exc


def _unrecognised(ref: str, path: Path, sources: list[type[Source]], broken: dict[str, Exception]) -> str:
    """One line: what the installed sources load (suffixes, folder markers), so the fix is plain."""
    kinds = [kind for cls in sources
             for kind in (*cls.suffixes, *(f"a folder holding {marker}" for marker in cls.layouts))]
    what = "folder" if path.is_dir() else "file"
    missing = "" if path.exists() else f"; {path} does not exist"
    return (f"model '{ref}' is not a factory ('package.module:function') nor a supported {what} "
            f"({', '.join(kinds) or 'no source is installed'}){missing}" + _broken(broken))


def _broken(broken: dict[str, Exception]) -> str:
    return f"; sources that failed to load: {', '.join(sorted(broken))}" if broken else ""
