"""The phone bundlers (android, ios): generated source for their apps (Kotlin for android, Swift for ios).

The input shape, tensor encodings (dtype, scale, zero point), labels and runtime versions are read from the
validated model files by their own runtimes and written into `ModelInfo.kt` / `ModelInfo.swift`, so the app code
and the models it ships cannot drift apart. Neither app can be compiled here (no Android SDK or Xcode); the tests
check every path and shape the generated code names against the bundle.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from edge_pipeline import registry
from edge_pipeline.errors import StageFailed
from edge_pipeline.plugins import Bundler, Runner
from edge_pipeline.types import JsonObject

if TYPE_CHECKING:
    from edge_pipeline.report.model import Report

ASSET_ROOTS = {"android": "app/src/main/assets", "ios": "EdgepipeDemo/Resources"}
MODEL_INFO = {"android": "app/src/main/java/dev/edgepipe/demo/ModelInfo.kt", "ios": "EdgepipeDemo/ModelInfo.swift"}
VERSION_TOKENS = {"@LITERT_VERSION@": "ai-edge-litert", "@EXECUTORCH_VERSION@": "executorch"}
TEXT_SUFFIXES = {".kts", ".properties", ".yml", ".kt", ".swift", ".md", ".xml"}


@dataclass(frozen=True)
class TensorEncoding:
    """One tensor as the app must encode it, from a runner's `signature` (JSON: in the report or fresh)."""

    shape: list[int]
    dtype: str
    scale: float
    zero_point: int

    @classmethod
    def read(cls, tensor: object) -> TensorEncoding:
        if not isinstance(tensor, dict):
            raise StageFailed(f"a tensor signature is {tensor!r}, not an object: rebuild with this edgepipe")
        return cls(list(tensor["shape"]), str(tensor["dtype"]), float(tensor["scale"]), int(tensor["zero_point"]))


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorEncoding, ...]
    outputs: tuple[TensorEncoding, ...]

    @classmethod
    def read(cls, signature: object) -> Signature:
        if not isinstance(signature, dict):
            raise StageFailed(f"a model signature is {signature!r}, not an object: rebuild with this edgepipe")
        return cls(tuple(map(TensorEncoding.read, signature["inputs"])),
                   tuple(map(TensorEncoding.read, signature["outputs"])))


@dataclass(frozen=True)
class AppModel:
    """A model the bundle ships, as config.json lists it."""

    name: str      # format:precision
    path: str      # under the assets' models/
    format: str


@dataclass(frozen=True)
class DescribedModel:
    """A bundled model with the tensors its generated source encodes."""

    model: AppModel
    input: TensorEncoding
    output: TensorEncoding

    @property
    def asset(self) -> str:
        return f"models/{self.model.path}"


@dataclass(frozen=True)
class AppConfig:
    """The bundle's config.json (written by the bundle stage), as the generated source reads it."""

    target: str
    layout: str
    input_shape: list[int]
    labels: list[str]
    warmup: int
    runs: int
    models: tuple[AppModel, ...]

    @classmethod
    def read(cls, path: Path) -> AppConfig:
        data = json.loads(path.read_text())
        models = tuple(AppModel(m["name"], m["path"], m["format"]) for m in data["models"])
        return cls(data["target"], data["layout"], data["input_shape"], data["labels"], data["warmup"],
                   data["runs"], models)


def describe_models(dest: Path, template: str, report: Report) -> list[DescribedModel]:
    """Every bundled model with its tensors as its runtime read them from the validated file (measure stage);
    reports written before that carried them are read from the bundled file here."""
    assets = dest / ASSET_ROOTS[template]
    config = AppConfig.read(assets / "config.json")
    artifacts = {a.label: a for a in report.artifacts if a.status == "ok"}
    described = []
    for model in config.models:
        artifact = artifacts[model.name]
        signature = Signature.read(artifact.signature) if artifact.signature else \
            _read_signature(artifact.runner, assets / "models" / model.path)
        if len(signature.inputs) != 1 or len(signature.outputs) != 1:
            raise StageFailed(f"the {template} demo app handles one input and one output; {model.name} has "
                              f"{len(signature.inputs)} and {len(signature.outputs)}")
        if signature.inputs[0].shape != config.input_shape:
            raise StageFailed(f"{model.name} takes {signature.inputs[0].shape}, the bundle's samples are "
                              f"{config.input_shape}")
        described.append(DescribedModel(model, signature.inputs[0], signature.outputs[0]))
    return described


def _read_signature(runner_name: str | None, path: Path) -> Signature:
    signature = registry.create(Runner, runner_name).signature(path) if runner_name is not None else None
    if signature is None:
        raise StageFailed(f"the runner '{runner_name}' cannot describe {path.name}'s tensors for a phone app")
    return Signature.read(signature)


def _kotlin(models: list[DescribedModel], config: AppConfig, samples: int) -> str:
    def entry(m: DescribedModel) -> str:
        i, o = m.input, m.output
        return (f"        BundledModel(name = {_q(m.model.name)}, asset = {_q(m.asset)}, "
                f"format = {_q(m.model.format)},\n"
                f"            inputType = {_q(i.dtype)}, inputScale = {i.scale!r}f, inputZeroPoint = {i.zero_point},\n"
                f"            outputType = {_q(o.dtype)}, outputScale = {o.scale!r}f, "
                f"outputZeroPoint = {o.zero_point}),")

    return "\n".join([
        "// Written by `edgepipe bundle` from the validated models: do not edit by hand.",
        "package dev.edgepipe.demo", "", "object ModelInfo {",
        f"    const val TARGET = {_q(config.target)}",
        f"    const val LAYOUT = {_q(config.layout)}",
        f"    val INPUT_SHAPE = longArrayOf({', '.join(map(str, config.input_shape))})",
        f"    val LABELS = listOf({', '.join(map(_q, config.labels))})",
        f"    const val SAMPLE_COUNT = {samples}", f"    const val WARMUP = {config.warmup}",
        f"    const val RUNS = {config.runs}", "    val MODELS = listOf(", *map(entry, models), "    )", "}", ""])


def _swift(models: list[DescribedModel], config: AppConfig, samples: int) -> str:
    entries = [f"        BundledModel(name: {_q(m.model.name)}, asset: {_q(m.asset)}, format: {_q(m.model.format)}),"
               for m in models]
    return "\n".join([
        "// Written by `edgepipe bundle` from the validated models: do not edit by hand.", "",
        "enum ModelInfo {",
        f"    static let target = {_q(config.target)}",
        f"    static let layout = {_q(config.layout)}",
        f"    static let inputShape = [{', '.join(map(str, config.input_shape))}]",
        f"    static let labels = [{', '.join(map(_q, config.labels))}]",
        f"    static let sampleCount = {samples}", f"    static let warmup = {config.warmup}",
        f"    static let runs = {config.runs}", "    static let models = [", *entries, "    ]", "}", ""])


def _q(text: str) -> str:
    return json.dumps(text)   # a JSON string literal is a valid Kotlin and Swift string literal for these names


RENDERERS: dict[str, Callable[[list[DescribedModel], AppConfig, int], str]] = {"android": _kotlin, "ios": _swift}


class PhoneBundler(Bundler):
    """A phone app: ModelInfo source generated from the bundled models, runtime versions filled into its build
    files."""

    def generate(self, dest: Path, report: Report, folder: Path) -> JsonObject:
        template = self.name
        assets = dest / ASSET_ROOTS[template]
        config = AppConfig.read(assets / "config.json")
        samples = len(json.loads((assets / "samples.json").read_text())["inputs"])
        models = describe_models(dest, template, report)
        (dest / MODEL_INFO[template]).write_text(RENDERERS[template](models, config, samples))
        return {"generated": [MODEL_INFO[template]], "runtime_versions": fill_runtime_versions(dest, report)}


def fill_runtime_versions(dest: Path, report: Report) -> dict[str, str]:
    """Writes the runtime versions that validated the models into the app's build files (their @TOKEN@s);
    returns package -> version."""
    texts = {file: file.read_text() for file in dest.rglob("*") if file.is_file() and file.suffix in TEXT_SUFFIXES}
    used = [token for token in VERSION_TOKENS if any(token in text for text in texts.values())]
    tool_versions = report.tool_versions or {}
    runtime_versions = {token: tool_versions.get(VERSION_TOKENS[token]) for token in used}
    missing = [VERSION_TOKENS[t] for t, v in runtime_versions.items() if not v]
    if missing:
        raise StageFailed(f"report.json lacks the versions of {', '.join(missing)}: rebuild with this edgepipe")
    for file, text in texts.items():
        if any(token in text for token in used):
            for token, version in runtime_versions.items():
                text = text.replace(token, str(version))
            file.write_text(text)
    return {VERSION_TOKENS[t]: str(v) for t, v in runtime_versions.items()}


class AndroidBundler(PhoneBundler):
    name: ClassVar[str] = "android"
    formats: ClassVar[tuple[str, ...]] = ("tflite", "pte")    # what the app's code can run
    asset_root: ClassVar[str] = ASSET_ROOTS["android"]


class IosBundler(PhoneBundler):
    name: ClassVar[str] = "ios"
    formats: ClassVar[tuple[str, ...]] = ("pte",)
    asset_root: ClassVar[str] = ASSET_ROOTS["ios"]
