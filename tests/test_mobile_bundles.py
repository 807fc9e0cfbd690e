"""The android (Kotlin) and ios (Swift) bundles. Neither app can be compiled here (no Android SDK, no Xcode), so
these tests read the generated code back and check it against the bundled models as their own runtimes read
them: every file the code names exists, shapes, names and runtime versions match, and the int8 tensor encoding
written for the app reproduces the outputs recorded at build time when applied exactly as the app applies it."""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge_pipeline.host import package_version

from .conftest import run_cli

pytestmark = pytest.mark.slow
KOTLIN_DIR = "app/src/main/java/dev/edgepipe/demo"
ANDROID_ASSETS = "app/src/main/assets"


def unzip(archive: Path, dest: Path) -> Path:
    with zipfile.ZipFile(archive) as zf:
        top = {n.split("/")[0] for n in zf.namelist()}
        assert top == {archive.stem} and not any(".." in n for n in zf.namelist())
        zf.extractall(dest)
    return dest / archive.stem


def kotlin_models(source: str) -> list[dict]:
    pattern = re.compile(r'BundledModel\(name = "([^"]+)", asset = "([^"]+)", format = "([^"]+)",'
                         r'\s*inputType = "(\w+)", '
                         r'inputScale = ([-\d.eE]+)f, inputZeroPoint = (-?\d+),\s*outputType = "(\w+)", '
                         r'outputScale = ([-\d.eE]+)f, outputZeroPoint = (-?\d+)\)')
    keys = ("name", "asset", "format", "input_type", "input_scale", "input_zp", "output_type", "output_scale",
            "output_zp")
    return [dict(zip(keys, m)) for m in pattern.findall(source)]


@pytest.fixture(scope="module")
def android_app(android_build: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    zips = list((android_build["out"] / "android").glob("*.zip"))
    assert len(zips) == 1, zips
    return unzip(zips[0], tmp_path_factory.mktemp("android-app"))


def test_android_app_names_only_files_the_bundle_has(android_app: Path) -> None:
    code = "\n".join(p.read_text() for p in (android_app / KOTLIN_DIR).glob("*.kt"))
    assets = android_app / ANDROID_ASSETS
    for name in re.findall(r'assets\.open\("([^"]+)"\)', code):
        assert (assets / name).is_file(), name
    models = kotlin_models((android_app / KOTLIN_DIR / "ModelInfo.kt").read_text())
    assert {m["name"] for m in models} == {"tflite:fp32", "tflite:int8", "pte:fp32", "pte:int8"}
    for model in models:
        assert (assets / model["asset"]).is_file(), model["asset"]
    samples = json.loads((assets / "samples.json").read_text())
    assert set(samples["expected"]) == {m["name"] for m in models}      # MainActivity looks each model up by name
    manifest = (android_app / "app/src/main/AndroidManifest.xml").read_text()
    activity = re.search(r'android:name="\.(\w+)"', manifest).group(1)
    assert f"class {activity}" in code
    assert not re.search(r"@[A-Z_]+@", "\n".join(p.read_text() for p in android_app.rglob("*.kts")) +
                         (android_app / "gradle.properties").read_text())


def test_android_runtime_versions_are_the_validating_ones(android_app: Path) -> None:
    properties = dict(line.split("=", 1) for line in (android_app / "gradle.properties").read_text().splitlines()
                      if "=" in line and not line.startswith("#"))
    assert properties["edgepipe.litertVersion"] == package_version("ai-edge-litert")
    assert properties["edgepipe.executorchVersion"] == package_version("executorch")
    gradle = (android_app / "app/build.gradle.kts").read_text()
    assert '"com.google.ai.edge.litert:litert:$litertVersion"' in gradle
    assert '"org.pytorch:executorch-android:$executorchVersion"' in gradle


def test_android_shapes_and_encodings_match_the_models(android_app: Path) -> None:
    """INPUT_SHAPE against each model as its runtime reads it; the int8 constants, applied as Classifiers.kt does,
    reproduce the outputs the build recorded."""
    from ai_edge_litert.interpreter import Interpreter
    from executorch.runtime import Runtime

    info = (android_app / KOTLIN_DIR / "ModelInfo.kt").read_text()
    shape = [int(v) for v in re.search(r"INPUT_SHAPE = longArrayOf\(([^)]*)\)", info).group(1).split(",")]
    labels = re.findall(r'"([^"]*)"', re.search(r"LABELS = listOf\(([^)]*)\)", info).group(1))
    assets = android_app / ANDROID_ASSETS
    samples = json.loads((assets / "samples.json").read_text())
    inputs = np.asarray(samples["inputs"], dtype=np.float32)
    for model in kotlin_models(info):
        path = assets / model["asset"]
        if model["format"] == "pte":
            meta = Runtime.get().load_program(str(path)).load_method("forward").metadata
            assert list(meta.input_tensor_meta(0).sizes()) == shape
            assert list(meta.output_tensor_meta(0).sizes())[-1] == len(labels)
            continue
        interpreter = Interpreter(model_path=str(path))
        interpreter.allocate_tensors()
        (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
        assert list(inp["shape"]) == shape and out["shape"][-1] == len(labels)
        assert (model["input_type"] == np.dtype(inp["dtype"]).name
                and model["output_type"] == np.dtype(out["dtype"]).name)
        outputs = []
        for x in inputs:
            if model["input_type"] == "int8":   # LiteRtClassifier.quantize
                x = np.clip(np.round(x / float(model["input_scale"])) + int(model["input_zp"]),
                            -128, 127).astype(np.int8)
            interpreter.set_tensor(inp["index"], x.reshape(shape).astype(inp["dtype"]))
            interpreter.invoke()
            y = interpreter.get_tensor(out["index"])[0]
            if model["output_type"] == "int8":
                y = (y.astype(np.float32) - int(model["output_zp"])) * float(model["output_scale"])
            outputs.append(y)
        expected = np.asarray(samples["expected"][model["name"]], dtype=np.float32)
        assert np.abs(np.asarray(outputs) - expected).max() < 1e-4, model["name"]


def test_ios_bundle(android_build: dict, tmp_path: Path) -> None:
    out = tmp_path / "ios"
    proc = run_cli("build", "--target", "ios", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    app = unzip(next((out / "ios").glob("*.zip")), tmp_path / "app")
    info = (app / "EdgepipeDemo/ModelInfo.swift").read_text()
    shape = [int(v) for v in re.search(r"static let inputShape = \[([^\]]*)\]", info).group(1).split(",")]
    report = json.loads((out / "ios" / "report.json").read_text())
    assert shape == [1, *report["source"]["input_shape"][1:]]
    entries = re.findall(r'BundledModel\(name: "([^"]+)", asset: "([^"]+)", format: "(\w+)"\)', info)
    assert {e[0] for e in entries} == {"pte:fp32", "pte:int8"}
    resources = app / "EdgepipeDemo/Resources"
    for _, asset, fmt in entries:
        assert fmt == "pte" and (resources / asset).is_file()
    code = "\n".join(p.read_text() for p in (app / "EdgepipeDemo").glob("*.swift"))
    for name in re.findall(r'resourcePath\("([^"]+)"\)', code):
        assert (resources / name).is_file(), name
    assert 'appendingPathComponent("Resources")' in code
    project = (app / "project.yml").read_text()
    assert f"branch: swiftpm-{package_version('executorch')}" in project and "path: EdgepipeDemo/Resources" in project
    assert "@EXECUTORCH_VERSION@" not in project
    check_coreml_is_unvalidated(out / "ios", report, app)


def check_coreml_is_unvalidated(folder: Path, report: dict, app: Path) -> None:
    """Core ML converts here but cannot run: kept and labelled, never passing, never bundled."""
    import xml.etree.ElementTree as ET

    import coremltools as ct

    (coreml,) = [a for a in report["artifacts"] if a["format"] == "coreml"]
    assert coreml["status"] == "unvalidated" and coreml["agreement"] is None and coreml["latency_ms"] is None
    assert "only on Apple platforms" in coreml["export"]["unvalidated_reason"]
    assert any(w.startswith("coreml:fp16 is unvalidated") for w in report["warnings"])
    spec = ct.models.MLModel(str(folder / coreml["path"]), skip_model_load=True).get_spec()
    assert list(spec.description.input[0].type.multiArrayType.shape) == [1, *report["source"]["input_shape"][1:]]
    assert coreml["export"]["metadata"]["mil_ops"].get("conv", 0) >= 2
    junit = ET.parse(folder / "report.junit.xml").getroot()
    skipped = [c for c in junit.iter("testcase")
               if "coreml:fp16" in c.get("classname") and c.find("skipped") is not None]
    assert skipped and "unvalidated" in skipped[0].find("skipped").get("message")
    assert "UNVALIDATED" in (folder / "report.md").read_text()
    assert not list(app.rglob("*.mlpackage"))


def test_coreml_package_bytes_are_reproducible(tmp_path: Path) -> None:
    """coremltools names package items with random UUIDs; the exporter renames them after their content."""
    import torch

    from edge_pipeline.fsutil import sha256_artifact
    from edge_pipeline.plugins import Model
    from targets.exporters.coreml import CoremlExporter

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(144, 10)).eval()
    hashes = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        meta = CoremlExporter().export(Model("torch", net, (torch.randn(1, 1, 8, 8),)), tmp_path / name)
        assert meta["compute_precision"] == "fp32" and meta["validated"] is False
        manifest = json.loads((tmp_path / name / "Manifest.json").read_text())
        assert manifest["rootModelIdentifier"] in manifest["itemInfoEntries"]
        hashes.append(sha256_artifact(tmp_path / name))
    assert hashes[0] == hashes[1]
