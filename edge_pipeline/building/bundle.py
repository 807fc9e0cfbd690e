"""Demo bundles: a `sample_apps/<template>/` folder filled with the validated artifacts, runtime files, sample
inputs with the outputs each artifact's runner produced, labels and preprocessing constants, plus a zip.

A build writes `samples.json` next to its artifacts; `edgepipe bundle` (or `build` for targets with a
template) turns a build folder into `bundle/` and `<name>.zip`. What differs per app (its formats, where it
reads its files, generated code) comes from its bundler plugin (`edgepipe.bundlers`, targets/bundlers/)."""
from __future__ import annotations

import json
import math
import shutil
import zipfile
from pathlib import Path
from typing import Any

from edge_pipeline import registry
from edge_pipeline.errors import ConfigError, InputError, StageFailed, UnknownPlugin
from edge_pipeline.fsutil import atomic_path, replace_dir, sha256_artifact
from edge_pipeline.paths import inside, plain_name

SAMPLE_COUNT = 8
SAMPLE_FLOATS = 2 ** 19   # at most ~0.5M input values as JSON (8 digits), so photo-sized inputs keep 3 samples


def templates_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "sample_apps"


def sample_record(report: dict[str, Any], data_file: Path) -> dict[str, Any]:
    """The bundle's inputs: a few evaluation samples (of the first input) and what each validated artifact
    answered to them."""
    from edge_pipeline.datafiles import load_bundle

    data = load_bundle(data_file)
    first = data.eval_inputs.arrays[0]
    count = max(1, min(SAMPLE_COUNT, SAMPLE_FLOATS // max(1, math.prod(first.shape[1:]))))
    inputs = first[:count]
    labels = data.eval_labels[:count].tolist() if data.eval_labels is not None and data.eval_labels.ndim == 1 else []
    source = report["source"]
    classes = int(source["output_shape"][-1]) if source.get("output_shape") else 0
    return {"input_shape": [1, *source["input_shape"][1:]],
            "layout": "NCHW" if source["framework"] == "torch" else "NHWC",
            "labels": [str(i) for i in range(classes)],
            "inputs": [x.reshape(-1).tolist() for x in inputs], "sample_labels": labels,
            "expected": {f"{a['format']}:{a['precision']}": _first(a.get("sample_outputs"), count)
                         for a in report["artifacts"] if a["status"] == "ok"}}


def _first(values: list | None, count: int) -> list | None:
    return values[:count] if values is not None else None


def template_misfit(source: dict[str, Any]) -> str | None:
    """Why the demo apps cannot take this model (they feed one float32 tensor and read one), or None."""
    inputs, outputs = source.get("inputs") or [], source.get("outputs") or []
    if len(inputs) > 1 or any(i["dtype"] != "float32" for i in inputs):
        described = ", ".join(f"{i['name']} {i['shape']} {i['dtype']}" for i in inputs)
        return f"the demo apps feed one float32 input; this model takes {described}"
    if len(outputs) > 1:
        return (f"the demo apps read one output; this model gives {len(outputs)} "
                f"({', '.join(o['name'] for o in outputs)})")
    return None


def bundler(template_name: str) -> Any:
    """The bundler plugin of a template; an unknown one names the templates there are."""
    try:
        return registry.create("bundler", template_name)
    except UnknownPlugin:
        raise ConfigError(f"no bundle template '{template_name}' (templates: {', '.join(registry.names('bundler'))})") from None


def bundleable(template_name: str, artifacts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validated artifacts in a format the template's app code runs."""
    try:
        formats = bundler(template_name).formats
    except ConfigError:
        formats = None   # write_bundle says which templates there are
    return [a for a in artifacts if a["status"] == "ok" and (formats is None or a["format"] in formats)]


def write_bundle(template_name: str, folder: Path, report: dict[str, Any], zip_name: str | None = None) -> dict[str, Any]:
    """Fills folder/bundle from the template and writes folder/<zip_name>.zip; only validated artifacts go in."""
    zip_name = plain_name(zip_name or f"{report['target']}-{template_name}-bundle", "bundle name")
    app = bundler(plain_name(template_name, "bundle template"))
    template = app.template_dir or templates_dir() / app.name
    if not template.is_dir():
        raise ConfigError(f"the '{template_name}' bundler's template folder {template} is missing")
    samples = _samples(folder)
    staging = folder / ".bundle.staging"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        models, generated = _fill(template, app, staging, folder, report, samples)
        replace_dir(staging, folder / "bundle")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)   # a refused or interrupted bundle leaves nothing half-made
        raise
    zip_path = folder / f"{zip_name}.zip"
    _zip(folder / "bundle", zip_path)
    return {"path": "bundle", "zip": zip_path.name, "template": template_name, "models": [m["path"] for m in models],
            **generated, "files": sorted(p.relative_to(folder / "bundle").as_posix()
                                         for p in (folder / "bundle").rglob("*") if p.is_file())}


def _fill(template: Path, app: Any, staging: Path, folder: Path, report: dict[str, Any],
          samples: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Copies the template into staging and adds the models, runtime files, config, samples and generated code."""
    shutil.copytree(template, staging)
    models, vendor = [], {}
    assets = staging / app.asset_root     # where the app reads its files from
    (assets / "models").mkdir(parents=True, exist_ok=True)
    bundled = bundleable(app.name, report["artifacts"])
    if not bundled:
        raise StageFailed(f"no validated artifact the '{app.name}' app can run "
                          f"(it runs {', '.join(app.formats or ('any format',))})")
    for artifact in bundled:
        src = inside(folder, artifact.get("path"), "report.json artifact path")
        if not src.exists():
            raise InputError(f"{src} is listed in report.json but missing: rebuild first")
        if sha256_artifact(src) != artifact.get("sha256"):
            raise StageFailed(f"{src} changed since the build (sha256 differs from report.json): rebuild first")
        copy = shutil.copytree if src.is_dir() else shutil.copy2
        copy(src, inside(assets / "models", artifact["path"], "model path"))
        models.append({"name": f"{artifact['format']}:{artifact['precision']}", "path": artifact["path"],
                       "format": artifact["format"]})
        if artifact.get("runner"):
            vendor.update(registry.create("runner", artifact["runner"]).bundle_files())
    for relative, source in sorted(vendor.items()):
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, staging / relative)
    config = {"target": report["target"], "input_shape": samples["input_shape"], "layout": samples["layout"],
              "labels": samples["labels"], "warmup": 5, "runs": 30, "models": models}
    (assets / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (assets / "samples.json").write_text(json.dumps({"inputs": samples["inputs"], "labels": samples["sample_labels"],
                                                      "expected": samples["expected"]}) + "\n")
    generated = app.generate(staging, report, folder)
    _fill_readme(staging / "README.md", report, models, len(samples["inputs"]), generated)
    return models, generated


def _samples(folder: Path) -> dict[str, Any]:
    """samples.json as the build wrote it; a missing or damaged one means the folder is not a usable build."""
    try:
        samples = json.loads((folder / "samples.json").read_bytes())
        if not isinstance(samples, dict):
            raise ValueError("not an object")
        return samples
    except (OSError, ValueError) as exc:
        raise InputError(f"{folder / 'samples.json'} is missing or damaged ({exc.__class__.__name__}): "
                         f"rebuild first") from exc


# Model files are stored, not deflated: an app maps them from its package as they are (Android's `noCompress
# "tflite"`), and deflating megabytes of weights took most of an unchanged MobileNetV2 rebuild.
STORED_SUFFIXES = frozenset({".tflite", ".pte", ".onnx", ".ort", ".ptl", ".bin"})


def _zip(folder: Path, dest: Path) -> None:
    """Fixed timestamps and sorted entries: the same bundle gives the same zip bytes."""
    with atomic_path(dest) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:   # samples: fast
            for file in sorted(p for p in folder.rglob("*") if p.is_file()):
                info = zipfile.ZipInfo(f"{dest.stem}/{file.relative_to(folder).as_posix()}", (1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_STORED if file.suffix in STORED_SUFFIXES else zipfile.ZIP_DEFLATED
                info.external_attr = (0o755 if file.suffix in (".py", ".sh") else 0o644) << 16
                zf.writestr(info, file.read_bytes())


def _fill_readme(path: Path, report: dict[str, Any], models: list[dict], samples: int, generated: dict[str, Any]) -> None:
    if not path.is_file():
        return
    versions = {a["runtime_version"] for a in report["artifacts"] if a.get("runtime_version")}
    text = path.read_text().format(
        target=report["target"], framework=report["source"]["framework"], params=f"{report['source']['params'] or 0:,}",
        sample_count=samples, tfjs_version=", ".join(sorted(versions)) or "?",
        arena=generated.get("c_array", {}).get("arena_estimate_bytes", "?"),
        model_bytes=generated.get("c_array", {}).get("model_bytes", "?"),
        runtime_versions=", ".join(f"{k} {v}" for k, v in generated.get("runtime_versions", {}).items()) or "?",
        model_lines="\n".join(f"- `models/{m['path']}`: {m['name']}" for m in models))
    path.write_text(text)
