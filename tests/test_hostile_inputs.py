"""Hostile input and faults (issue 13): each case gets one line on stderr without a traceback, the documented exit
code (0 ok, 1 gate failed, 2 usage/config/input, 3 environment, 4 stage failed, 130 interrupted), `--json` an
error object on stdout, and nothing written where it should not be.

Most cases run the CLI in-process (typer's CliRunner) and never start a build; one cheap real build
(`onnx:fp32` on the built-in example) backs the file-mode, stale-staging and full-disk cases (marked slow), and
the signal cases run the CLI as a subprocess and stop it while its first worker runs.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from edge_pipeline.cli import app
from edge_pipeline.errors import InputError
from edge_pipeline.safe_archive import check_keras_archive

from .conftest import EDGEPIPE

ROOT = Path(__file__).resolve().parents[1]
CHEAP = "[targets.android]\nformats = ['onnx:fp32']\n"
runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result: Any, code: int, *needles: str, progress: bool = False) -> str:
    """Exit code, one `error: ...` line on stderr (the only line, or after the build's progress lines when
    `progress`), no traceback, and the expected words in it."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0] and (progress or len(lines) == 1), result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def json_error(result: Any) -> dict[str, Any]:
    payload = json.loads(result.stdout)
    assert payload["passed"] is False and {"type", "message"} <= set(payload["error"])
    return payload["error"]


# ---- configuration files: refused before any work, exit 2 -----------------------------------------------------

CONFIGS = {
    "non-utf8-edgepipe-toml": ("edgepipe.toml", b"example = '\xff\xfe torch'\n", "not UTF-8"),
    "tool-edgepipe-is-a-string": ("pyproject.toml", b"[tool]\nedgepipe = \"oops\"\n", "must be a table"),
    "tool-is-a-string": ("pyproject.toml", b"tool = \"x\"\n", "'tool' must be a table"),
    "invalid-toml": ("edgepipe.toml", b"[targets.android\n", "invalid TOML"),
    "empty-threads": ("edgepipe.toml", b"[profile]\nthreads = []\n", "threads' is empty"),
    "empty-target-threads": ("edgepipe.toml", b"[targets.android.profile]\nthreads = []\n", "threads' is empty"),
    "calibration-without-model": ("edgepipe.toml", b"calibration = 'data:calibration'\n", "'model' is not"),
    "example-inputs-without-model": ("edgepipe.toml", b"example-inputs = [1, 1, 8, 8]\n", "'model' is not"),
    "weights-without-model": ("edgepipe.toml", b"weights = 'model.pt'\n", "'model' is not"),
    "target-name-is-a-path": ("edgepipe.toml", b"[targets.'../evil']\nextends = 'android'\n", "plain file name"),
}


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_bad_config_file_is_one_line_exit_2(case: str, as_json: bool, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    name, body, needle = CONFIGS[case]
    (tmp_path / name).write_bytes(body)
    monkeypatch.chdir(tmp_path)
    result = invoke("build", "--out", tmp_path / "out", *(["--json"] if as_json else []))
    one_error_line(result, 2, needle)
    if as_json:
        assert json_error(result)["type"] == "ConfigError"
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "evil").exists()


def test_explicit_config_that_is_not_utf8_or_a_folder(tmp_path: Path) -> None:
    (tmp_path / "ci.toml").write_bytes(b"\x80\x81")
    one_error_line(invoke("build", "--config", tmp_path / "ci.toml", "--out", tmp_path / "o"), 2, "not UTF-8")
    one_error_line(invoke("build", "--config", tmp_path, "--out", tmp_path / "o"), 2, "config file not found")
    assert not (tmp_path / "o").exists()


# ---- output locations: checked before the build -----------------------------------------------------------------


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "taken"
    path.write_text("keep me")
    return path


OUTPUTS = {
    "build-out-is-a-file": (lambda t: ["build", "--out", _file(t)], "is a file, not a folder"),
    "build-out-under-a-file": (lambda t: ["build", "--out", _file(t) / "sub"], "is a file, so no folder"),
    "build-target-is-a-path": (lambda t: ["build", "--target", "../escape", "--out", t / "o"], "plain file name"),
    "profile-out-is-a-file": (lambda t: ["profile", t / "m.tflite", "--out", _file(t)], "is a file, not a folder"),
    "tune-out-is-a-file": (lambda t: ["tune", "--out", _file(t)], "is a file, not a folder"),
    "bundle-target-is-a-path": (lambda t: ["bundle", "--target", "../../x", "--out", t / "o"], "plain file name"),
    "baseline-out-is-a-folder": (lambda t: ["baseline", "update", t / "r.json", "--out", t], "is a folder"),
    "baseline-out-under-a-file": (lambda t: ["baseline", "update", t / "r.json", "--out", _file(t) / "b.json"],
                                  "is a file, so no folder"),
    "baseline-out-unwritable": (lambda t: ["baseline", "update", t / "r.json", "--out", "/sys/edgepipe-base.json"],
                                "/sys/edgepipe-base.json"),
    "gate-junit-under-a-file": (lambda t: ["gate", t / "r.json", "--junit", _file(t) / "j.xml"], "is a file"),
}


@pytest.mark.parametrize("case", sorted(OUTPUTS))
def test_unusable_output_location_is_refused_before_work(case: str, tmp_path: Path, cache_dir: Path) -> None:
    args, needle = OUTPUTS[case]
    (tmp_path / "r.json").write_text(json.dumps(_report([_art("onnx", "fp32")])))
    started = time.perf_counter()
    result = invoke(*args(tmp_path))
    one_error_line(result, 2, needle)
    assert time.perf_counter() - started < 20          # refused up front, not after a build
    if (tmp_path / "taken").exists():
        assert (tmp_path / "taken").read_text() == "keep me"
    assert not list(tmp_path.rglob("*.partial")) and not (tmp_path / "o").exists()
    assert not (tmp_path.parent / "escape").exists() and not Path("/sys/edgepipe-base.json").exists()


# ---- gate and baseline: hostile report files are exit 2, failed builds fail the gate ----------------------------


def _art(fmt: str, precision: str, status: str = "ok", size: int = 2048, **extra: Any) -> dict[str, Any]:
    return {"format": fmt, "precision": precision, "status": status, "path": f"model-{precision}.{fmt}",
            "size_bytes": size, "size_compressed_bytes": size, "sha256": "0" * 64, "accuracy": 0.95,
            "accuracy_drop": 0.0, "agreement": 1.0, "measured_on": "host A",
            "latency_ms": {"p50": 1.0, "p90": 1.1, "noise": 0.0, "threads": 1},
            "error": None if status == "ok" else {"stage": "export", "type": "StageFailed", "message": "boom"},
            **extra}


def _report(artifacts: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    failed = any(a.get("status") == "failed" for a in artifacts if isinstance(a, dict))
    return {"schema_version": 2, "target": "android", "passed": not failed,
            "status": "stage_failed" if failed else "passed", "source": {"framework": "torch"},
            "artifacts": artifacts, "checks": [], "budgets": {}, **extra}


BAD_REPORTS = {
    "garbage-bytes": (os.urandom(64) + b"\xff", "is not a JSON text"),
    "empty-file": (b"", "not valid JSON"),
    "json-list": (b"[1, 2]", "not an edgepipe report"),
    "no-artifacts": (json.dumps({"schema_version": 2, "target": "android", "status": "passed", "source": {},
                                 "passed": True}).encode(), "artifacts is missing"),
    "artifacts-not-a-list": (json.dumps(_report({"a": 1})).encode(),  # type: ignore[arg-type]
                             "artifacts must be a list"),
    "artifact-is-a-string": (json.dumps(_report(["tflite"])).encode(),  # type: ignore[list-item]
                             "artifacts[0] must be an object"),
    "size-is-a-string": (json.dumps(_report([_art("pte", "fp32", size="big")])).encode(),  # type: ignore[arg-type]
                         "size_bytes"),
    "target-is-a-path": (json.dumps(_report([_art("pte", "fp32")], target="../../x")).encode(), "plain file name"),
    "no-status": (json.dumps({k: v for k, v in _report([_art("pte", "fp32")]).items() if k != "status"}).encode(),
                  "status is missing"),
    "nan-accuracy": (json.dumps(_report([_art("pte", "fp32", accuracy=float("nan"))])).encode(), "not a measurement"),
    "baseline-without-artifacts": (json.dumps({"schema_version": 2, "kind": "edgepipe-baseline", "target": "android",
                                               "artifacts": {}}).encode(), "artifacts must be a non-empty object"),
    "unknown-budget-name": (json.dumps(_report([_art("pte", "fp32")], budgets={"max-sise-kb": 1})).encode(),
                            "unknown budget"),
}


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("case", sorted(BAD_REPORTS))
def test_gate_on_a_hostile_report_is_exit_2(case: str, as_json: bool, tmp_path: Path) -> None:
    body, needle = BAD_REPORTS[case]
    (tmp_path / "report.json").write_bytes(body)
    junit = tmp_path / "gate.xml"
    result = invoke("gate", tmp_path / "report.json", "--junit", junit, *(["--json"] if as_json else []))
    one_error_line(result, 2, needle)
    if as_json:
        assert json_error(result)["type"] == "ConfigError"
    assert not junit.exists()


FAILED_BUILDS = {
    "every-artifact-failed": [_art("tflite", "fp32", "failed"), _art("pte", "fp32", "failed")],
    "one-artifact-failed": [_art("tflite", "fp32"), _art("pte", "fp32", "failed")],
    "no-artifacts": [],
    "only-unvalidated": [_art("coreml", "fp32", "unvalidated")],
}


@pytest.mark.parametrize("budget", [[], ["--budget", "max-size-kb=1"]], ids=["no-budget", "budget"])
@pytest.mark.parametrize("case", sorted(FAILED_BUILDS))
def test_gate_fails_closed_on_a_failed_build(case: str, budget: list[str], tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(_report(FAILED_BUILDS[case])))
    result = invoke("gate", path, *budget, "--json")
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    assert payload["passed"] is False and any(c["kind"] == "status" and not c["passed"] for c in payload["checks"])
    text = invoke("gate", path, *budget)
    assert text.exit_code == 1 and "gate failed" in text.stdout and "gate passed" not in text.stdout


def test_gate_rechecks_the_budgets_the_build_failed(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(_report([_art("pte", "int8")], status="gate_failed", passed=False,
                                       budgets={"max-size-kb": 1})))
    assert invoke("gate", path).exit_code == 1
    assert invoke("gate", path, "--budget", "max-size-kb=4").exit_code == 0    # the command line wins


def test_unvalidated_artifacts_meet_size_budgets_and_skip_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    coreml = _art("coreml", "fp32", "unvalidated", accuracy=None, latency_ms=None)
    path.write_text(json.dumps(_report([_art("pte", "fp32"), coreml])))
    result = invoke("gate", path, "--budget", "max-latency-ms=5", "--budget", "max-size-kb=4", "--json")
    assert result.exit_code == 0, result.output
    kinds = {(c["artifact"], c["metric"]): c["kind"] for c in json.loads(result.stdout)["checks"]}
    assert kinds[("coreml:fp32", "latency_p50_ms")] == "skipped" and kinds[("coreml:fp32", "size_kb")] == "budget"
    assert invoke("gate", path, "--budget", "max-size-kb=1").exit_code == 1


@pytest.mark.parametrize("how", ["baseline-update", "as-baseline"])
def test_a_failed_report_is_never_a_baseline(how: str, tmp_path: Path) -> None:
    failed = tmp_path / "failed.json"
    failed.write_text(json.dumps(_report([_art("pte", "fp32"), _art("tflite", "fp32", "failed")])))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_report([_art("pte", "fp32")])))
    out = tmp_path / "edgepipe-baseline.json"
    if how == "baseline-update":
        result = invoke("baseline", "update", failed, "--out", out)
    else:
        result = invoke("gate", good, "--baseline", failed)
    one_error_line(result, 2, "did not pass", "never a baseline")
    assert not out.exists()


def test_gate_refuses_a_baseline_as_the_report(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_report([_art("pte", "fp32")])))
    base = tmp_path / "base.json"
    assert invoke("baseline", "update", good, "--out", base).exit_code == 0
    one_error_line(invoke("gate", base), 2, "is a baseline, not a build report")
    assert invoke("gate", good, "--baseline", base).exit_code == 0


# ---- bundle: paths from report.json stay inside the build folder ------------------------------------------------


def _fake_build(tmp_path: Path, path: str, target: str = "linux-arm64") -> Path:
    """A build folder whose report.json names `path` with the sha256 of a secret file outside it."""
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    folder = tmp_path / "out" / "linux-arm64"
    folder.mkdir(parents=True)
    (folder / "samples.json").write_text(json.dumps({"input_shape": [1, 1, 8, 8], "layout": "NCHW", "labels": [],
                                                      "inputs": [], "sample_labels": [], "expected": {}}))
    artifact = _art("tflite", "fp32", path=path, sha256=hashlib.sha256(secret.read_bytes()).hexdigest())
    (folder / "report.json").write_text(json.dumps(_report([artifact], target=target)))
    return folder


BUNDLE_PATHS = {
    "dot-dot": (lambda t: "../../secret.txt", "points outside"),
    "absolute": (lambda t: str(t / "secret.txt"), "points outside"),
    "symlink-out": (lambda t: "model-fp32.tflite", "through a symlink"),
    "the-folder-itself": (lambda t: ".", "names"),
    "backslashes": (lambda t: "..\\..\\secret.txt", "not a relative path"),
}


@pytest.mark.parametrize("case", sorted(BUNDLE_PATHS))
def test_bundle_refuses_report_paths_outside_the_build(case: str, tmp_path: Path) -> None:
    path, needle = BUNDLE_PATHS[case]
    folder = _fake_build(tmp_path, path(tmp_path))
    if case == "symlink-out":
        (folder / "model-fp32.tflite").symlink_to(tmp_path / "secret.txt")
    result = invoke("bundle", "--target", "linux-arm64", "--out", tmp_path / "out")
    one_error_line(result, 2, needle)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["report.json", "samples.json"] + (["model-fp32.tflite"] if case == "symlink-out" else []))
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name == "secret.txt"]


def test_bundle_of_a_report_for_another_target_or_without_samples(tmp_path: Path) -> None:
    folder = _fake_build(tmp_path, "model-fp32.tflite", target="android")
    one_error_line(invoke("bundle", "--target", "linux-arm64", "--out", tmp_path / "out"), 2, "is a build of 'android'")
    (folder / "report.json").write_text(json.dumps(_report([_art("tflite", "fp32")], target="linux-arm64")))
    (folder / "samples.json").unlink()
    one_error_line(invoke("bundle", "--target", "linux-arm64", "--out", tmp_path / "out"), 2, "samples.json")
    assert sorted(p.name for p in folder.iterdir()) == ["report.json"]


# ---- the one error handler: any exception is one line and a documented code -------------------------------------

RAISED = {
    "internal-bug": (RuntimeError("boom\n  with a second line"), 4, "internal error: RuntimeError: boom with a second"),
    "permission": (PermissionError(errno.EACCES, "Permission denied", "/x/edgepipe.toml"), 2, "cannot use /x/edgepipe"),
    "disk-full": (OSError(errno.ENOSPC, "No space left on device", "/x/out"), 3, "disk full"),
    "out-of-memory": (MemoryError(), 3, "out of memory"),
    "interrupt": (KeyboardInterrupt(), 130, "interrupted"),
}


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("case", sorted(RAISED))
def test_any_exception_becomes_one_line_and_its_exit_code(case: str, as_json: bool, cache_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    exc, code, needle = RAISED[case]

    def explode(*_a: Any, **_k: Any) -> None:
        raise exc

    monkeypatch.setattr(sys.modules["edge_pipeline.api"], "targets", explode)   # what `edgepipe targets` calls
    result = invoke("targets", *(["--json"] if as_json else []))
    one_error_line(result, code, needle)
    if as_json:
        json_error(result)


def test_usage_errors_with_json_still_print_an_error_object() -> None:
    result = invoke("gate", "--json", "--no-such-flag")
    assert result.exit_code == 2 and json_error(result)["type"] == "UsageError" and "Traceback" not in result.output


# ---- zip bombs: declared sizes are checked before anything unpacks ----------------------------------------------


def test_keras_zip_bomb_is_refused_before_unpacking(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model.weights.h5", bytes(64 << 20))
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(InputError, match="would unpack to more than 16.0 MB"):
        check_keras_archive(bomb, 16 << 20)
    check_keras_archive(bomb, 128 << 20)


@pytest.mark.parametrize("name,content,needle", [("../evil.py", b"x", "outside the archive"),
                                                 (None, b"not a zip at all", "not a readable zip")])
def test_keras_archive_names_and_garbage(tmp_path: Path, name: str | None, content: bytes, needle: str) -> None:
    path = tmp_path / "model.keras"
    if name is None:
        path.write_bytes(content)
    else:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(name, content)
    with pytest.raises(InputError, match=needle):
        check_keras_archive(path, 1 << 30)


# ---- a real (cheap) build: file modes, stale staging, a full disk ----------------------------------------------


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    (project / "edgepipe.toml").write_text(CHEAP)
    return project


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="module")
def cheap_build(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`build` of onnx:fp32 under umask 022, over the staging folder a killed build left."""
    tmp = tmp_path_factory.mktemp("cheap")
    out = tmp / "out"
    stale = out / f".android.staging-{_dead_pid()}"
    stale.mkdir(parents=True)
    (stale / "model-fp32.tflite").write_bytes(b"left by a killed build")
    old = os.umask(0o022)
    try:
        result = invoke("build", "--config", _project(tmp) / "edgepipe.toml", "--out", out)
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
def test_a_killed_builds_staging_folder_is_removed(cheap_build: Path) -> None:
    assert sorted(p.name for p in cheap_build.iterdir()) == ["android"]


@pytest.mark.slow
@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["umask-022", "umask-027"])
def test_outputs_respect_the_umask(umask: int, cheap_build: Path, tmp_path: Path) -> None:
    out = cheap_build
    if umask != 0o022:
        out = tmp_path / "out"
        old = os.umask(umask)
        try:
            assert invoke("build", "--config", _project(tmp_path) / "edgepipe.toml", "--out", out).exit_code == 0
        finally:
            os.umask(old)
    folder = out / "android"
    for name in ("model-fp32.onnx", "report.json", "report.md", "manifest.json", "samples.json", "recorded.npz"):
        assert (folder / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask
    report = json.loads((folder / "report.json").read_text())
    assert "log" not in report or (folder / report["log"]).is_file()


@pytest.mark.slow
def test_gate_on_the_real_build(cheap_build: Path) -> None:
    report = cheap_build / "android" / "report.json"
    assert invoke("gate", report).exit_code == 0
    assert invoke("gate", report, "--budget", "max-size-kb=1").exit_code == 1


@pytest.fixture()
def full_disk(tmp_path: Path) -> Any:
    """A 100 KB tmpfs (root only): smaller than the onnx model, so the build's write must fail."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "full"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100k", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.slow
@pytest.mark.parametrize("earlier", [False, True], ids=["empty", "earlier-build"])
def test_disk_full_leaves_nothing_behind(earlier: bool, full_disk: Path, cheap_build: Path, tmp_path: Path) -> None:
    if earlier:
        (full_disk / "android").mkdir()
        (full_disk / "android" / "report.json").write_text("the earlier build")
    before = sorted(p.relative_to(full_disk) for p in full_disk.rglob("*"))
    config = _project(tmp_path) / "edgepipe.toml"
    for _attempt in range(1 if earlier else 2):   # a second try fails the same way, not earlier for leftovers
        result = invoke("build", "--config", config, "--out", full_disk, "--json")
        line = one_error_line(result, 3, "disk full", "nothing was written", progress=True)
        assert len(line) < 300 and json_error(result)["type"] == "DiskFull"
        assert sorted(p.relative_to(full_disk) for p in full_disk.rglob("*")) == before
    if earlier:
        assert (full_disk / "android" / "report.json").read_text() == "the earlier build"


# ---- signals: workers die with the CLI; an interrupt says what was kept ---------------------------------------


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _start_build(tmp_path: Path) -> tuple[subprocess.Popen, set[int]]:
    """The CLI in a subprocess, returned once one of its worker processes runs."""
    proc = subprocess.Popen([*EDGEPIPE, "build", "--no-cache", "--out", str(tmp_path / "out")],
                            cwd=_project(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        workers = {c for c in _children(proc.pid) if "edge_pipeline.building.worker" in _cmdline(c)}
        if workers:
            time.sleep(1.0)   # let it get going
            return proc, workers
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"no worker process started: {proc.communicate()}")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _gone(pids: set[int], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(_running(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig,code,name", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_interrupt_stops_workers_and_says_what_was_kept(sig: int, code: int, name: str, tmp_path: Path,
                                                        cache_dir: Path) -> None:
    proc, workers = _start_build(tmp_path)
    os.kill(proc.pid, sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"interrupted ({name})" in errors[0] and "nothing was written" in errors[0], stderr
    assert "Traceback" not in stderr + stdout
    assert _gone(workers, 5)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_when_the_cli_is_killed(tmp_path: Path, cache_dir: Path) -> None:
    proc, workers = _start_build(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert _gone(workers, 5), [_cmdline(p) for p in workers if _running(p)]


# ---- `make test` on a machine without the Debian packages ------------------------------------------------------


def test_make_test_names_missing_packages_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "EDGEPIPE_SYSDEPS_ROOT": str(tmp_path), "EDGEPIPE_SYSDEPS_NO_INSTALL": "1"}
    proc = subprocess.run([str(ROOT / ".ci" / "system-deps")], capture_output=True, text=True, env=env)
    assert proc.returncode == 3 and proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    for package in ("chromium", "openssh-server", "adb", "g++", "openjdk-17-jre-headless", "apt-get install"):
        assert package in line
