"""Demo bundles: a `sample_apps/<template>/` folder filled with the validated artifacts, runtime files, sample
inputs with the outputs each artifact's runner produced, labels and preprocessing constants, plus a zip.

A build writes `samples.json` next to its artifacts; `edgepipe bundle` (or `build` for targets with a
template) turns a build folder into `bundle/` and `<name>.zip`. Everything here reads the typed report
(`edge_pipeline.report.model.Report`). What differs per app (its formats, where it reads its files, generated
code) comes from its bundler plugin (`edgepipe.bundlers`, targets/bundlers/)."""
from __future__ import annotations

import json
import math
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_pipeline import registry
from edge_pipeline.errors import ConfigError, InputError, StageFailed
from edge_pipeline.fsutil import (
    apply_umask,
    atomic_path,
    copy_regular_tree,
    current_umask,
    files_of,
    regular_file,
    replace_dir,
    sha256_artifact,
)
from edge_pipeline.paths import inside, plain_name
from edge_pipeline.plugins import Bundler, Runner
from edge_pipeline.report.model import ArtifactReport, Report
from edge_pipeline.types import JsonObject, JsonValue

SAMPLE_COUNT = 8
SAMPLE_FLOATS = 2 ** 19   # at most ~0.5M input values as JSON (8 digits), so photo-sized inputs keep 3 samples
SAMPLE_KEYS = ("input_shape", "layout", "labels", "inputs", "sample_labels", "expected")


@dataclass(frozen=True)
class Samples:
    """samples.json: a few evaluation inputs (of the first input), their labels, and what each validated
    artifact answered to them (by label)."""

    input_shape: list[JsonValue]
    layout: str
    labels: list[JsonValue]
    inputs: list[JsonValue]
    sample_labels: list[JsonValue]
    expected: JsonObject

    def to_json(self) -> JsonObject:
        return {"input_shape": self.input_shape, "layout": self.layout, "labels": self.labels, "inputs": self.inputs,
                "sample_labels": self.sample_labels, "expected": self.expected}

    @classmethod
    def from_json(cls, data: JsonValue) -> "Samples":
        """A samples.json as the build wrote it; any other shape is a ValueError."""
        if not isinstance(data, dict) or any(key not in data for key in SAMPLE_KEYS):
            raise ValueError("not a samples object")
        lists = [data[key] for key in ("input_shape", "labels", "inputs", "sample_labels")]
        layout, expected = data["layout"], data["expected"]
        if not all(isinstance(v, list) for v in lists) or not isinstance(layout, str) or not isinstance(expected, dict):
            raise ValueError("a samples field has the wrong type")
        input_shape, labels, inputs, sample_labels = (v if isinstance(v, list) else [] for v in lists)
        return cls(input_shape, layout, labels, inputs, sample_labels, expected)


@dataclass(frozen=True)
class BundledModel:
    """One artifact in the bundle, as the app's config.json lists it."""

    name: str
    path: str
    format: str | None

    def to_json(self) -> JsonObject:
        return {"name": self.name, "path": self.path, "format": self.format}


@dataclass(frozen=True)
class BundleSummary:
    """What a bundle holds: the report's `bundle` section (`to_json`)."""

    path: str
    zip: str
    template: str
    models: tuple[str, ...]
    generated: JsonObject          # what the bundler plugin reports about the code it generated
    files: tuple[str, ...]

    def to_json(self) -> JsonObject:
        return {"path": self.path, "zip": self.zip, "template": self.template, "models": list(self.models),
                **self.generated, "files": list(self.files)}


def templates_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "sample_apps"


def sample_record(report: Report, data_dir: Path) -> JsonObject:
    """samples.json's content: a few evaluation samples of the source's stored data (`data_dir`) and what each
    validated artifact answered to them."""
    from edge_pipeline.datafiles import load_bundle

    data = load_bundle(data_dir)
    eval_inputs = data.eval_inputs
    index = next((i for i, d in enumerate(eval_inputs.dims) if d is not None), 0)   # a scalar first input has no
    dim = eval_inputs.dim(index) or 0                                             # samples: the first batched one
    first = np.moveaxis(eval_inputs.arrays[index], dim, 0) if eval_inputs.arrays[index].ndim else \
        eval_inputs.arrays[index].reshape(1)
    count = max(1, min(SAMPLE_COUNT, SAMPLE_FLOATS // max(1, math.prod(first.shape[1:]))))
    labels = data.eval_labels[:count].tolist() if data.eval_labels is not None and data.eval_labels.ndim == 1 else []
    source = report.source
    classes = int(source.output_shape[-1]) if source.output_shape else 0
    return Samples(input_shape=[1, *list(source.input_shape or ())[1:]],
                   layout=_layout(report),
                   labels=[str(i) for i in range(classes)], inputs=[x.reshape(-1).tolist() for x in first[:count]],
                   sample_labels=labels,
                   expected={a.label: _first(a.sample_outputs, count) for a in report.artifacts if a.status == "ok"},
                   ).to_json()


def _layout(report: Report) -> str:
    """The source's image layout as its Source plugin declared it (reports from before it was recorded: PyTorch
    sources were NCHW, the others NHWC)."""
    layout = report.source.extra.get("layout")
    if isinstance(layout, str):
        return layout
    return "NCHW" if report.source.framework == "torch" else "NHWC"


def _first(values: JsonValue, count: int) -> JsonValue:
    return values[:count] if isinstance(values, list) else None


def template_misfit(template_name: str, report: Report) -> str | None:
    """Why the template's app cannot take this model, or None: its task is not one the app runs, or (apps of
    tensor models) it does not take one float32 tensor and give one."""
    try:
        app = registry.plugin(Bundler, template_name)
    except ConfigError:
        return None   # write_bundle says which templates there are
    task = report.source.task or "tensor"
    if task not in app.tasks:
        return f"its app runs {', '.join(app.tasks)} models, not {task}"
    if task == "text-generation" or app.replays_recorded:
        return None
    inputs, outputs = report.source.inputs or (), report.source.outputs or ()
    if len(inputs) > 1 or any(i.dtype != "float32" for i in inputs):
        described = ", ".join(f"{i.name} {_shape(i.shape)} {i.dtype}" for i in inputs)
        return f"the demo apps feed one float32 input; this model takes {described}"
    if len(outputs) > 1:
        return (f"the demo apps read one output; this model gives {len(outputs)} "
                f"({', '.join(str(o.name) for o in outputs)})")
    return None


def _shape(shape: object) -> str:
    return str(list(shape)) if isinstance(shape, (list, tuple)) else str(shape)


def bundler(template_name: str) -> Bundler:
    """The bundler plugin of a template; a path or an unknown name is blamed on `--template` (not on the bundle
    name derived from it) and names the templates there are."""
    known = registry.names(Bundler.kind)
    if template_name not in known:
        raise ConfigError(f"no bundle template {template_name!r} (--template): the templates are {', '.join(known)}")
    return registry.create(Bundler, template_name)


def runnable(template_name: str, report: Report) -> list[ArtifactReport]:
    """Validated artifacts in a format (and a file) the template's app code runs."""
    try:
        app = registry.plugin(Bundler, template_name)
        formats, suffixes = app.formats, app.suffixes
    except ConfigError:
        formats = suffixes = None   # write_bundle says which templates there are
    return [a for a in report.artifacts if a.status == "ok" and (formats is None or a.format in formats)
            and (suffixes is None or Path(a.path or "").suffix in suffixes)]


def bundleable(template_name: str, report: Report) -> bool:
    """Whether the template's app runs any of the report's validated artifacts."""
    return bool(runnable(template_name, report))


def write_bundle(template_name: str, folder: Path, report: Report, zip_name: str | None = None) -> JsonObject:
    """`make_bundle`, as the report's `bundle` section."""
    return make_bundle(template_name, folder, report, zip_name).to_json()


def make_bundle(template_name: str, folder: Path, report: Report, zip_name: str | None = None) -> BundleSummary:
    """Fills folder/bundle from the template and writes folder/<zip_name>.zip; only validated artifacts go in.
    Every name is checked before anything is replaced."""
    app = bundler(template_name)
    zip_name = plain_name(zip_name or f"{report.target}-{template_name}-bundle", "bundle name (--name)", ".zip")
    template = app.template_dir or templates_dir() / app.name
    if not template.is_dir():
        raise ConfigError(f"the '{template_name}' bundler's template folder {template} is missing")
    samples = _samples(folder)
    staging = folder / ".bundle.staging"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        models, generated = _fill(template, app, staging, folder, report, samples)
        apply_umask(staging)          # template, runtime and generated files alike: the modes open() would give
        replace_dir(staging, folder / "bundle")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)   # a refused or interrupted bundle leaves nothing half-made
        raise
    zip_path = folder / f"{zip_name}.zip"
    _zip(folder / "bundle", zip_path)
    files = sorted(p.relative_to(folder / "bundle").as_posix() for p in files_of(folder / "bundle"))
    return BundleSummary("bundle", zip_path.name, template_name, tuple(m.path for m in models), generated,
                         tuple(files))


def _fill(template: Path, app: Bundler, staging: Path, folder: Path, report: Report,
          samples: Samples) -> tuple[list[BundledModel], JsonObject]:
    """Copies the template into staging and adds the models, runtime files, config, samples and generated code.
    Only regular files are copied: a symlink in a template or artifact folder is refused, never followed."""
    copy_regular_tree(template, staging, "bundle template")
    models: list[BundledModel] = []
    vendor: dict[str, Path] = {}
    assets = staging / app.asset_root     # where the app reads its files from
    (assets / "models").mkdir(parents=True, exist_ok=True)
    for artifact in report.artifacts:     # every path the report names stays inside, bundled or not: fail closed
        if artifact.status == "ok" and artifact.path:
            inside(folder, artifact.path, "report.json artifact path")
    bundled = runnable(app.name, report)
    if not bundled:
        raise StageFailed(f"no validated artifact the '{app.name}' app can run "
                          f"(it runs {', '.join(app.formats or app.suffixes or ('any format',))})")
    for artifact in bundled:
        src = _artifact(folder, artifact)
        dest = inside(assets / "models", artifact.path, "model path")
        if src.is_dir():
            copy_regular_tree(src, dest, "artifact folder")
        else:
            shutil.copyfile(src, dest)
        models.append(BundledModel(artifact.label, str(artifact.path), artifact.format))
        if artifact.runner:
            vendor.update(registry.create(Runner, artifact.runner).bundle_files())
    for relative, source in sorted(vendor.items()):
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, staging / relative)
    config = {"target": report.target, "input_shape": samples.input_shape, "layout": samples.layout,
              "labels": samples.labels, "warmup": 5, "runs": 30, "models": [m.to_json() for m in models]}
    (assets / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (assets / "samples.json").write_text(json.dumps({"inputs": samples.inputs, "labels": samples.sample_labels,
                                                      "expected": samples.expected}) + "\n")
    generated = app.generate(staging, report, folder)
    _fill_readme(staging / "README.md", report, models, len(samples.inputs), generated)
    return models, generated


def _artifact(folder: Path, artifact: ArtifactReport) -> Path:
    """The artifact's file or folder in the build folder: inside it, regular files only, unchanged since the build
    (the sha256 is taken over regular files, so a symlink or FIFO in a folder artifact is refused before any read)."""
    src = inside(folder, artifact.path, "report.json artifact path")
    if not src.exists():
        raise InputError(f"{src} is listed in report.json but missing: rebuild first")
    if not src.is_dir():
        regular_file(src, "report.json artifact path")
    if sha256_artifact(src) != artifact.sha256:
        raise StageFailed(f"{src} changed since the build (sha256 differs from report.json): rebuild first")
    return src


def _samples(folder: Path) -> Samples:
    """samples.json as the build wrote it; a missing or damaged one means the folder is not a usable build (a FIFO
    or a symlink in its place is refused before it is opened)."""
    path = regular_file(folder / "samples.json", "the build's")
    try:
        return Samples.from_json(json.loads(path.read_bytes()))
    except (OSError, ValueError) as exc:
        raise InputError(f"{folder / 'samples.json'} is missing or damaged ({exc.__class__.__name__}): "
                         f"rebuild first") from exc


# Model files are stored, not deflated: an app maps them from its package as they are (Android's `noCompress
# "tflite"`), and deflating megabytes of weights took most of an unchanged MobileNetV2 rebuild.
STORED_SUFFIXES = frozenset({".tflite", ".pte", ".onnx", ".ort", ".ptl", ".bin"})


def _zip(folder: Path, dest: Path) -> None:
    """Fixed timestamps and sorted entries: the same bundle gives the same zip bytes (under the same umask, which
    the entries' modes follow as the bundle folder's do: unzip restores them as stored)."""
    mask = current_umask()
    with atomic_path(dest) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:   # samples: fast
            for file in files_of(folder):
                info = zipfile.ZipInfo(f"{dest.stem}/{file.relative_to(folder).as_posix()}", (1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_STORED if file.suffix in STORED_SUFFIXES else zipfile.ZIP_DEFLATED
                info.external_attr = ((0o777 if file.suffix in (".py", ".sh") else 0o666) & ~mask) << 16
                zf.writestr(info, file.read_bytes())


def _fill_readme(path: Path, report: Report, models: list[BundledModel], samples: int,
                 generated: JsonObject) -> None:
    if not path.is_file():
        return
    versions = {a.runtime_version for a in report.artifacts if a.runtime_version}
    c_array, runtime_versions = _object(generated.get("c_array")), _object(generated.get("runtime_versions"))
    text = path.read_text().format(
        target=report.target, framework=report.source.framework, params=f"{report.source.params or 0:,}",
        sample_count=samples, tfjs_version=", ".join(sorted(versions)) or "?",
        arena=c_array.get("arena_estimate_bytes", "?"), model_bytes=c_array.get("model_bytes", "?"),
        runtime_versions=", ".join(f"{k} {v}" for k, v in runtime_versions.items()) or "?",
        model_lines="\n".join(f"- `models/{m.path}`: {m.name}" for m in models))
    path.write_text(text)


def _object(value: JsonValue) -> JsonObject:
    return value if isinstance(value, dict) else {}
