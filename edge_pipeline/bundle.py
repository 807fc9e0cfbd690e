"""Demo bundles: a `sample_apps/<template>/` folder filled with the built artifacts, runtime files, sample
inputs with the outputs their runner produced, labels and preprocessing constants."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from . import registry
from .errors import StageFailed
from .types import Target

SAMPLE_COUNT = 8


def templates_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "sample_apps"


def write_bundle(target: Target, folder: Path, report: dict[str, Any], steps: list[Any],
                 data_file: Path) -> dict[str, Any]:
    """Writes folder/bundle; returns a summary for the report. Only validated artifacts go in."""
    template = templates_dir() / (target.bundle or "")
    if not template.is_dir():
        raise StageFailed(f"bundle template '{target.bundle}' not found in {templates_dir()}")
    dest = folder / "bundle"
    shutil.copytree(template, dest)
    arrays = np.load(data_file, allow_pickle=False)
    inputs = arrays["eval_inputs"][:SAMPLE_COUNT]
    labels = arrays["eval_labels"][:SAMPLE_COUNT].tolist() if "eval_labels" in arrays.files else []
    models, vendor = [], {}
    (dest / "models").mkdir(exist_ok=True)
    for step, artifact in zip(steps, report["artifacts"]):
        if artifact["status"] != "ok":
            continue
        shutil.copytree(folder / artifact["path"], dest / "models" / artifact["path"]) if (folder / artifact["path"]).is_dir() \
            else shutil.copy2(folder / artifact["path"], dest / "models" / artifact["path"])
        models.append({"name": f"{artifact['format']}:{artifact['precision']}", "path": artifact["path"],
                       "expected_outputs": artifact.get("sample_outputs")})
        runner = registry.create("runner", step.runner)
        vendor.update(getattr(runner, "bundle_files", lambda: {})())
    for relative, source in sorted(vendor.items()):
        (dest / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest / relative)
    source = report["source"]
    classes = int(source["output_shape"][-1]) if source.get("output_shape") else 0
    config = {"target": target.name, "input_shape": [1, *source["input_shape"][1:]],
              "layout": "NCHW" if source["framework"] == "torch" else "NHWC",
              "labels": [str(i) for i in range(classes)], "warmup": 5, "runs": 30, "models": models}
    (dest / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    samples = {"inputs": [x.reshape(-1).tolist() for x in inputs], "labels": labels,
               "expected": {m["name"]: m.pop("expected_outputs") for m in models}}
    (dest / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (dest / "samples.json").write_text(json.dumps(samples) + "\n")
    generated = {}
    for hook in ARTIFACT_HOOKS.get(target.bundle or "", []):
        generated.update(hook(dest, report, folder))
    _fill_readme(dest / "README.md", target, report, models, len(inputs), generated)
    return {"path": "bundle", "template": target.bundle, "models": [m["path"] for m in models], **generated,
            "files": sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())}


def _mcu_sources(dest: Path, report: dict[str, Any], folder: Path) -> dict[str, Any]:
    """TFLite Micro wants the model compiled in: C source of the validated int8 .tflite."""
    from .c_array import write_c_array

    tflite = next(a for a in report["artifacts"] if a["status"] == "ok" and a["format"] == "tflite")
    return {"c_array": write_c_array(folder / tflite["path"], dest, tflite["sha256"])}


ARTIFACT_HOOKS = {"mcu": [_mcu_sources]}   # template -> extra generators


def _fill_readme(path: Path, target: Target, report: dict[str, Any], models: list[dict], samples: int,
                 generated: dict[str, Any]) -> None:
    if not path.is_file():
        return
    versions = {a["runtime_version"] for a in report["artifacts"] if a.get("runtime_version")}
    text = path.read_text().format(
        target=target.name, framework=report["source"]["framework"], params=f"{report['source']['params']:,}",
        sample_count=samples, tfjs_version=", ".join(sorted(versions)) or "?",
        arena=generated.get("c_array", {}).get("arena_estimate_bytes", "?"),
        model_bytes=generated.get("c_array", {}).get("model_bytes", "?"),
        model_lines="\n".join(f"- `models/{m['path']}`: {m['name']}" for m in models))
    path.write_text(text)
