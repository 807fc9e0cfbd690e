"""Bounded reads and data (issue 19, classes 4 and 6 and part of 8): declared sizes (npz members, ONNX and TFLite
inputs, example shapes) are checked against the memory budget before anything allocates them; generators are
drawn lazily up to `calibration-samples` / `evaluation-samples`; NaN data is refused as drawn; thread counts, deep
TOML and an unusable cache folder are one line naming the key, file or folder, exit 2 (3 for the cache).

Most cases run the CLI in-process or call the data readers directly and never start a build; the memory cases run
the CLI under `ulimit -v 2 GiB` (so an allocation attempt would fail differently) and check its peak RSS. Two
cases run the source stage of a user model (torch), and one slow case a real onnx:fp32 build.
"""
from __future__ import annotations

import io
import json
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge_pipeline.config import load_config
from edge_pipeline.errors import ConfigError, InputError
from edge_pipeline.host import DataLimits, applied
from edge_pipeline.sources.user_data import example_inputs, load_bundle
from edge_pipeline.tensors import Tensors
from edge_pipeline.types import SourceSpec

from .conftest import EDGEPIPE
from .test_hostile_inputs import invoke, json_error, one_error_line

LIMIT_AS = 2 << 30
GIANT = 1_000_000_000     # the issue's [1, 1000000000] input: 3.7 GiB of float32


# ---- files that declare more than they hold ---------------------------------------------------------------------


def tiny_onnx(path: Path, shape: list[int | str]) -> Path:
    """A Relu model whose one input declares `shape` (a str is a dynamic dimension): a few hundred bytes."""
    import onnx
    from onnx import TensorProto, helper

    x, y = (helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("x", "y"))
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def tiny_tflite(path: Path, shape: list[int]) -> Path:
    """A RELU .tflite whose input declares `shape`, written with LiteRT's own flatbuffer schema (no TensorFlow)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    def tensor(name: bytes) -> schema.TensorT:
        item = schema.TensorT()
        item.shape, item.type, item.name, item.buffer = list(shape), schema.TensorType.FLOAT32, name, 0
        return item

    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs = [tensor(b"x"), tensor(b"y")], [0], [1]
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    graph.operators = [op]
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.RELU
    code.version = 1
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [graph], [schema.BufferT()]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


def forged_npz(path: Path, declared: tuple[int, ...], holds: int, name: str = "x.npy") -> Path:
    """An .npz whose member's header declares `declared` float32 but which holds `holds` bytes of data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": declared})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(name, header.getvalue() + bytes(holds))
    return path


def _object_npz(path: Path) -> Path:
    np.savez(path, x=np.array([1, "a", None], dtype=object))
    return path


def _bad_magic(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", b"\x93NUMPY\x09\x00garbage")
    return path


def _garbage(path: Path) -> Path:
    path.write_bytes(b"PK garbage" * 100)
    return path


def _stray_member(path: Path) -> Path:
    array = io.BytesIO()
    np.save(array, np.zeros((1, 6), np.float32))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", array.getvalue())
        archive.writestr("payload.bin", bytes(16 << 20))     # np.load would read it whole as bytes
    return path


NPZ = {   # --inputs files refused from their headers, in the CLI process, before a worker starts
    "declares-4-GiB-holds-1-MB": (lambda p: forged_npz(p, (1 << 30,), 1 << 20),
                                  ["array 'x' declares shape [1073741824] float32 (4.0 GiB)", "holds 1.0 MiB"]),
    "declares-less-than-it-holds": (lambda p: forged_npz(p, (1, 6), 4096), ["array 'x'", "holds 4.0 KiB"]),
    "object-array": (_object_npz, ["array 'x' holds Python objects (dtype object)"]),
    "bad-npy-version": (_bad_magic, ["array 'x' has no valid .npy header"]),
    "stray-member": (_stray_member, ["'payload.bin' is not a .npy array"]),
    "not-a-zip": (_garbage, ["is not a readable .npz file"]),
}


@pytest.mark.parametrize("case", sorted(NPZ))
def test_an_npz_that_declares_what_it_does_not_hold_is_refused_from_its_headers(
        case: str, tmp_path: Path, cache_dir: Path) -> None:
    make, needles = NPZ[case]
    model = tiny_onnx(tmp_path / "m.onnx", [1, 6])
    inputs = make(tmp_path / "in.npz")
    result = invoke("profile", model, "--inputs", inputs, "--out", tmp_path / "out", "--json")
    one_error_line(result, 2, "--inputs in.npz", *needles)
    assert json_error(result)["type"] == "InputError"
    assert not (tmp_path / "out").exists()


def test_npz_arrays_over_the_memory_budget_are_refused_naming_the_budget(
        tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_onnx(tmp_path / "m.onnx", [1, 6])
    np.savez(tmp_path / "in.npz", x=np.zeros((100_000, 6), np.float32))     # 2.3 MiB, honestly declared
    monkeypatch.setenv("EDGEPIPE_MAX_MEMORY_MB", "1")
    result = invoke("profile", model, "--inputs", tmp_path / "in.npz", "--out", tmp_path / "out")
    one_error_line(result, 2, "array 'x' declares shape [100000, 6] float32 (2.3 MiB)",
                   "over the memory budget of 1.0 MiB", "--max-memory")
    assert not (tmp_path / "out").exists()


# ---- model inputs that declare gigabytes: refused before inputs are generated ------------------------------------


def _limited(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], int]:
    """The CLI under a 2 GiB address-space limit; returns it and the peak RSS (KiB) of it and its workers."""
    rss_file = cwd / "maxrss"
    wrapper = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[2:]).returncode; "
               "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
               "sys.exit(code)")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT_AS, LIMIT_AS))

    proc = subprocess.run([sys.executable, "-c", wrapper, str(rss_file), *EDGEPIPE, *args], cwd=cwd, text=True,
                          capture_output=True, preexec_fn=limit, timeout=300)
    return proc, int(rss_file.read_text())


def _error_line(proc: subprocess.CompletedProcess[str]) -> str:
    (line,) = [line for line in proc.stderr.splitlines() if line.strip()]
    assert line.startswith("error: ") and "Traceback" not in proc.stderr + proc.stdout
    return line


GIANT_INPUTS = {
    "onnx-1x1e9": (lambda p: tiny_onnx(p / "m.onnx", [1, GIANT]), "m.onnx: input 'x' declares shape [1, 1000000000]"),
    "onnx-dynamic-batch": (lambda p: tiny_onnx(p / "m.onnx", ["N", GIANT]), "declares shape ['N', 1000000000]"),
    "tflite-1x1e9": (lambda p: tiny_tflite(p / "m.tflite", [1, GIANT]), "m.tflite: input 'x' declares shape"),
}


@pytest.mark.parametrize("case", sorted(GIANT_INPUTS))
def test_profile_of_a_model_declaring_a_giant_input_is_refused_before_allocating(
        case: str, tmp_path: Path, cache_dir: Path) -> None:
    make, needle = GIANT_INPUTS[case]
    model = make(tmp_path)
    started = time.monotonic()
    proc, peak_kib = _limited(["profile", str(model), "--out", str(tmp_path / "out")], tmp_path)
    assert proc.returncode == 2, proc.stderr
    line = _error_line(proc)
    for word in (needle, "float32 (3.7 GiB)", "over the memory budget of"):   # at most half of the 2 GiB limit
        assert word in line, line
    assert time.monotonic() - started < 120 and peak_kib < 600 * 1024       # refused, not allocated
    assert not (tmp_path / "out").exists()


def test_the_budget_from_the_environment_holds_and_garbage_is_refused(
        tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_onnx(tmp_path / "m.onnx", [1, 6])
    monkeypatch.setenv("EDGEPIPE_MAX_MEMORY_MB", "0.00001")     # 10 bytes: even 24 bytes of input is too much
    one_error_line(invoke("profile", model, "--out", tmp_path / "out"), 2, "input 'x' declares shape [1, 6] float32",
                   "over the memory budget of 10 B")
    monkeypatch.setenv("EDGEPIPE_MAX_MEMORY_MB", "lots")
    one_error_line(invoke("profile", model, "--out", tmp_path / "out"), 2, "EDGEPIPE_MAX_MEMORY_MB='lots'")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value,needle", [(float("nan"), "finite"), (0, "> 0"), (-5, "> 0")])
def test_max_memory_through_the_api_is_checked_before_any_work(value: float, needle: str, tmp_path: Path) -> None:
    from edge_pipeline import api

    with pytest.raises(ConfigError, match=f"--max-memory must be .*{needle}") as info:
        api.build(out_dir=tmp_path / "out", max_memory_mb=value)
    assert info.value.exit_code == 2 and not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="--max-memory must be"):
        api.profile(tmp_path / "m.onnx", out_dir=tmp_path / "out", max_memory_mb=value)


def test_example_inputs_shape_over_the_budget_is_refused_before_random_data() -> None:
    with pytest.raises(InputError, match=r"example-inputs: input 'input' declares shape \[1, 1000000000000\] "
                                         r"float32 \(3\.6 TiB\), over the memory budget") as info:
        example_inputs(SourceSpec(example=None, model="m:f", example_inputs=[1, 10**12]))
    assert info.value.exit_code == 2


# ---- generators: drawn lazily up to their caps; NaN refused as drawn ------------------------------------------

DATA_MODULE = '''
import numpy as np


def make_model():
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def endless_calibration():
    rng = np.random.default_rng(0)
    while True:
        yield rng.random((8, 1, 8, 8), dtype=np.float32)


def endless_evaluate():
    rng = np.random.default_rng(1)
    while True:
        yield rng.random((8, 1, 8, 8), dtype=np.float32), rng.integers(0, 10, 8)


def nan_calibration():
    rng = np.random.default_rng(0)
    for i in range(4):
        batch = rng.random((8, 1, 8, 8), dtype=np.float32)
        if i == 2:
            batch[3, 0, 1, 1] = np.nan
        yield batch


def inf_evaluate():
    rng = np.random.default_rng(1)
    for i in range(3):
        batch = rng.random((8, 1, 8, 8), dtype=np.float32)
        if i == 1:
            batch[:, 0, 0, 0] = np.inf
        yield batch, rng.integers(0, 10, 8)


def nan_example():
    return np.full((1, 1, 8, 8), np.nan, dtype=np.float32)
'''


@pytest.fixture()
def data_module(tmp_path: Path) -> str:
    """A module of data functions under a name unique to the test (modules stay imported between tests)."""
    name = f"bounds_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(DATA_MODULE)
    return name


def _spec(tmp_path: Path, **fields: object) -> SourceSpec:
    return SourceSpec(**{"example": None, "model": "m:f", "example_inputs": [1, 1, 8, 8], "base_dir": str(tmp_path),
                         **fields})


def _example() -> Tensors:
    return example_inputs(SourceSpec(example=None, model="m:f", example_inputs=[1, 1, 8, 8]))


def test_an_endless_calibration_generator_is_drawn_only_up_to_the_cap(tmp_path: Path, data_module: str) -> None:
    spec = _spec(tmp_path, calibration=f"{data_module}:endless_calibration",
                 evaluate=f"{data_module}:endless_evaluate")
    with applied(DataLimits(calibration_samples=20, evaluation_samples=12)):
        data = load_bundle(spec, _example(), tmp_path / "store")
    assert len(data.calibration) == 20 and len(data.eval_inputs) == 12 and len(data.eval_labels) == 12


@pytest.mark.parametrize("group,key", [("calibration", "calibration-samples"), ("evaluate", "evaluation-samples")])
def test_an_endless_generator_without_a_cap_stops_at_the_budget_naming_the_cap(
        group: str, key: str, tmp_path: Path, data_module: str) -> None:
    spec = _spec(tmp_path, **{group: f"{data_module}:endless_{group}"})
    with applied(DataLimits(max_memory_mb=1)), pytest.raises(InputError) as info:
        load_bundle(spec, _example(), tmp_path / "store")
    message = str(info.value)
    assert f"{group} '{data_module}:endless_{group}' yielded more than 1.0 MiB" in message and key in message
    assert info.value.exit_code == 2 and "\n" not in message


NON_FINITE = {
    "nan-calibration": ({"calibration": "nan_calibration"}, "calibration '{m}:nan_calibration' batch 2: input "
                                                            "'input' holds 1 NaN or infinite value(s)"),
    "inf-evaluation": ({"evaluate": "inf_evaluate"}, "evaluate '{m}:inf_evaluate' batch 1 inputs: input 'input' "
                                                     "holds 8 NaN or infinite value(s)"),
    "nan-example": ({"example_inputs": "nan_example"}, "example-inputs '{m}:nan_example': input 'input' holds 64"),
}


@pytest.mark.parametrize("case", sorted(NON_FINITE))
def test_non_finite_data_is_refused_as_drawn_naming_batch_and_input(case: str, tmp_path: Path,
                                                                     data_module: str) -> None:
    fields, needle = NON_FINITE[case]
    spec = _spec(tmp_path, **{k: f"{data_module}:{v}" for k, v in fields.items()})
    with pytest.raises(InputError) as info:
        load_bundle(spec, example_inputs(spec), tmp_path / "store")
    assert needle.format(m=data_module) in str(info.value) and info.value.exit_code == 2


def test_nan_calibration_stops_the_build_in_the_source_stage(user_project, monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path, data_module: str) -> None:
    folder = user_project(f"""
        model = "{data_module}:make_model"
        example-inputs = [1, 1, 8, 8]
        calibration = "{data_module}:nan_calibration"
        [targets.android]
        formats = ["onnx:fp32"]
        """)
    monkeypatch.chdir(folder)
    result = invoke("build", "--out", tmp_path / "out", "--no-cache")
    one_error_line(result, 2, "batch 2: input 'input' holds 1 NaN", progress=True)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_build_with_endless_generators_ends_at_the_caps(user_project, monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path, data_module: str) -> None:
    folder = user_project(f"""
        model = "{data_module}:make_model"
        example-inputs = [1, 1, 8, 8]
        calibration = "{data_module}:endless_calibration"
        evaluate = "{data_module}:endless_evaluate"
        evaluation-samples = 40
        [quantization]
        calibration-samples = 16
        [profile]
        runs = 3
        warmup = 1
        threads = [1]
        [targets.android]
        formats = ["onnx:fp32"]
        """)
    proc = subprocess.run([*EDGEPIPE, "build", "--out", str(tmp_path / "out"), "--json"], cwd=folder, text=True,
                          capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    source = json.loads(proc.stdout)["source"]
    assert source["eval_samples"] == 40 and source["calibration_samples"] == 16


# ---- configuration: thread counts, nesting, limits --------------------------------------------------------------

DEEP = "x = " + "[" * 3000 + "]" * 3000 + "\n"
CONFIGS = {
    "threads-zero": ("edgepipe.toml", "[profile]\nthreads = [0]\n", "'profile.threads' entries must be integers "
                                                                   "from 1 to 256"),
    "threads-100000": ("edgepipe.toml", "[profile]\nthreads = [1, 100000]\n", "got 100000"),
    "threads-negative": ("edgepipe.toml", "[profile]\nthreads = [-2]\n", "got -2"),
    "threads-bool": ("edgepipe.toml", "[profile]\nthreads = [true]\n", "got True"),
    "target-threads-zero": ("edgepipe.toml", "[targets.android.profile]\nthreads = [0]\n",
                            "'targets.android.profile.threads' entries"),
    "deep-array": ("edgepipe.toml", DEEP, "edgepipe.toml: invalid TOML: nested too deeply"),
    "deep-in-pyproject": ("pyproject.toml", "[tool.edgepipe]\n" + DEEP, "pyproject.toml: invalid TOML: nested too"),
    "forty-deep-array": ("edgepipe.toml", "x = " + "[" * 40 + "]" * 40 + "\n", "nested too deeply"),
    "max-memory-nan": ("edgepipe.toml", "max-memory-mb = nan\n", "'max-memory-mb' must be a finite number"),
    "max-memory-zero": ("edgepipe.toml", "max-memory-mb = 0\n", "'max-memory-mb' must be > 0"),
    "memory-mb-nan": ("edgepipe.toml", "[profile]\nmemory-mb = nan\n", "'profile.memory-mb' must be a finite"),
    "evaluation-samples-zero": ("edgepipe.toml", "model = 'm:f'\nevaluate = 'm:e'\nevaluation-samples = 0\n",
                                "'evaluation-samples' must be >= 1"),
    "evaluation-samples-alone": ("edgepipe.toml", "model = 'm:f'\nevaluation-samples = 10\n",
                                 "caps the samples drawn from 'evaluate', which is not set"),
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_bad_bound_in_config_is_one_line_exit_2(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name, body, needle = CONFIGS[case]
    (tmp_path / name).write_text(body)
    monkeypatch.chdir(tmp_path)
    result = invoke("build", "--out", tmp_path / "out", "--json")
    one_error_line(result, 2, needle)
    assert json_error(result)["type"] == "ConfigError"
    assert not (tmp_path / "out").exists()


def test_both_config_files_warn_naming_both_and_the_one_used(tmp_path: Path) -> None:
    (tmp_path / "edgepipe.toml").write_text("[profile]\nruns = 7\n")
    (tmp_path / "pyproject.toml").write_text("[tool.edgepipe]\n[tool.edgepipe.profile]\nruns = 3\n")
    config = load_config(cwd=tmp_path)
    assert config.profile == {"runs": 7} and config.origin == str(tmp_path / "edgepipe.toml")
    (warning,) = config.warnings
    assert str(tmp_path / "edgepipe.toml") in warning and str(tmp_path / "pyproject.toml") in warning
    assert f"using {tmp_path / 'edgepipe.toml'}" in warning and config.to_dict()["warnings"] == [warning]
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")        # no edgepipe table: nothing to say
    assert load_config(cwd=tmp_path).warnings == ()


def test_an_explicit_pyproject_without_an_edgepipe_table_is_named(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    one_error_line(invoke("build", "--config", tmp_path / "pyproject.toml", "--out", tmp_path / "out"), 2,
                   "pyproject.toml has no [tool.edgepipe] table")
    assert not (tmp_path / "out").exists()


def test_limits_precedence_flag_over_file_over_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "edgepipe.toml").write_text("max-memory-mb = 512\n[quantization]\ncalibration-samples = 16\n")
    monkeypatch.setenv("EDGEPIPE_MAX_MEMORY_MB", "64")
    config = load_config(cwd=tmp_path)
    assert config.limits(2048.0) == DataLimits(2048.0, 16, None)
    assert config.limits().memory_bytes == 512 << 20
    (tmp_path / "bare").mkdir()
    assert load_config(cwd=tmp_path / "bare").limits() == DataLimits(64.0)
    monkeypatch.delenv("EDGEPIPE_MAX_MEMORY_MB")
    assert 0 < DataLimits().memory_bytes < 1 << 50          # half of what this process may use


# ---- the cache folder: named with the fix when it cannot be used ------------------------------------------------

CACHE_ENVS = {
    "home-missing": ({"HOME": "/proc/edgepipe-no-home"}, "/proc/edgepipe-no-home/.cache/edgepipe (from HOME="),
    "home-unset-xdg-missing": ({"HOME": None, "XDG_CACHE_HOME": "/proc/edgepipe-no-xdg"},
                               "/proc/edgepipe-no-xdg/edgepipe (from XDG_CACHE_HOME="),
    "cache-dir-under-a-file": ({"EDGEPIPE_CACHE_DIR": "{tmp}/file/cache"}, "(from EDGEPIPE_CACHE_DIR)"),
}


@pytest.mark.parametrize("case", sorted(CACHE_ENVS))
def test_an_unusable_cache_folder_is_named_with_the_fix(case: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    env, needle = CACHE_ENVS[case]
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDGEPIPE_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value.format(tmp=tmp_path))
    result = invoke("build", "--out", tmp_path / "out")
    one_error_line(result, 3, "cache directory", needle, "set EDGEPIPE_CACHE_DIR to a writable folder")
    assert not (tmp_path / "out").exists()


def test_deep_toml_is_refused_by_the_reader_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "ci.toml").write_text(DEEP)
    with pytest.raises(ConfigError, match=r"ci\.toml: invalid TOML: nested too deeply") as info:
        load_config(tmp_path / "ci.toml")
    assert "\n" not in str(info.value)
