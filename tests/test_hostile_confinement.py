"""Confinement by construction (issue 19, class 5 and part of 8): every file read from an artifact folder, a build
folder or a TF.js manifest is a regular file inside that folder with no symlink on its path, bundles copy regular
files only and follow the umask, names are checked before anything is replaced, and an output folder that is a
mount point (docker's `-v`) is filled in place.

Each hostile case asserts the exit code, the one error line naming the input, and that nothing left the folder:
the outside secret's bytes are in no file under the output folder and no bundle or zip was written. The bundle
cases use hand-made build folders (no conversion); the TF.js cases a hand-written two-node graph model, refused
before Node starts (a FIFO stands in where a read would hang: a watchdog fails the test if anything opens it).
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_pipeline.fsutil import replace_dir

from .test_hostile_inputs import CHEAP, _art, _fake_build, _report, invoke, json_error, one_error_line

SECRET = b"TOP-SECRET-BYTES-" * 8
WEIGHTS = np.arange(4, dtype="<f4").tobytes()       # the hand-written TF.js model's one constant
TARGET = "linux-arm64"


# ---- helpers ----------------------------------------------------------------------------------------------------


def _secret(tmp_path: Path) -> Path:
    """The file a hostile build folder reaches for, alone in a folder outside the output folder."""
    path = tmp_path / "outside" / "secret.bin"
    path.parent.mkdir()
    path.write_bytes(SECRET)
    return path


def _leaked(root: Path) -> list[Path]:
    """Regular files under `root` (zips unpacked) that hold the secret's bytes."""
    found = []
    for path in (p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                data = b"".join(zf.read(name) for name in zf.namelist())
        if SECRET in data:
            found.append(path)
    return found


def _sha_following_links(folder: Path) -> str:
    """The sha256 a hostile report.json would carry: the folder's digest as the old walk computed it, following
    symlinks (so only confinement, not a hash mismatch, can refuse it)."""
    lines = [f"{p.relative_to(folder).as_posix()}:{hashlib.sha256(p.read_bytes()).hexdigest()}"
             for p in sorted(folder.rglob("*")) if p.is_file()]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


@contextlib.contextmanager
def _fifo_watch(path: Path) -> Iterator[threading.Event]:
    """Sets the event if anything opens the FIFO `path` for reading, and unblocks that reader, so a regression
    fails the test instead of hanging it."""
    opened, done = threading.Event(), threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)   # ENXIO while nobody reads
            except OSError:
                time.sleep(0.01)
                continue
            opened.set()
            os.close(fd)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield opened
    finally:
        done.set()
        thread.join()


def _folder_build(tmp_path: Path, hostile: Callable[[Path, Path], None]) -> Path:
    """A linux-arm64 build folder with one folder artifact (TF.js-shaped) that `hostile(model_dir, secret)` spoils,
    listed in report.json with the digest of what it now appears to hold."""
    secret = _secret(tmp_path)
    folder = _fake_build(tmp_path, "model-fp32-tfjs")
    model = folder / "model-fp32-tfjs"
    model.mkdir()
    (model / "model.json").write_text(json.dumps({"weightsManifest": [{"paths": ["group1-shard1of1.bin"]}]}))
    (model / "group1-shard1of1.bin").write_bytes(bytes(16))
    hostile(model, secret)
    artifact = _art("tfjs", "fp32", path="model-fp32-tfjs", sha256=_sha_following_links(model))
    (folder / "report.json").write_text(json.dumps(_report([artifact], target=TARGET)))
    return folder


def _bundle(tmp_path: Path, *extra: str) -> Any:
    return invoke("bundle", "--target", TARGET, "--out", tmp_path / "out", *extra)


def _assert_nothing_bundled(tmp_path: Path, folder: Path) -> None:
    assert not (folder / "bundle").exists() and not list(folder.glob("*.zip")), sorted(os.listdir(folder))
    assert not list(folder.glob(".bundle*")) and not _leaked(tmp_path / "out")


def _socket_at(path: Path) -> None:
    """A Unix socket file at `path` (bound through a short relative name: sun_path holds 108 bytes)."""
    here = os.getcwd()
    os.chdir(path.parent)
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path.name)
        sock.close()
    finally:
        os.chdir(here)


# ---- bundles copy regular files only ----------------------------------------------------------------------------

FOLDER_ENTRIES: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "shard-symlink-to-outside-file": (
        lambda m, s: ((m / "group1-shard1of1.bin").unlink(), (m / "group1-shard1of1.bin").symlink_to(s)),
        "group1-shard1of1.bin, a symlink"),
    "symlink-to-outside-folder": (lambda m, s: (m / "assets").symlink_to(s.parent), "assets, a symlink"),
    "symlink-in-a-subfolder": (lambda m, s: ((m / "sub").mkdir(), (m / "sub" / "extra.bin").symlink_to(s)),
                               "sub/extra.bin, a symlink"),
    "symlink-pointing-inside": (lambda m, s: (m / "copy.bin").symlink_to("group1-shard1of1.bin"),
                                "copy.bin, a symlink"),
    "fifo": (lambda m, s: os.mkfifo(m / "pipe.bin"), "pipe.bin, a FIFO"),
    "socket": (lambda m, s: _socket_at(m / "s.sock"), "s.sock, a socket"),
}


@pytest.mark.parametrize("case", sorted(FOLDER_ENTRIES))
def test_a_folder_artifact_holding_anything_but_regular_files_is_not_bundled(
        case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hostile, needle = FOLDER_ENTRIES[case]
    monkeypatch.chdir(tmp_path)
    folder = _folder_build(tmp_path, hostile)
    line = one_error_line(_bundle(tmp_path, "--template", "web"), 2, needle, "model-fp32-tfjs")
    assert "only regular files" in line
    _assert_nothing_bundled(tmp_path, folder)


def _symlinked_artifact(folder: Path, tmp_path: Path) -> str:
    """model-fp32.tflite is a symlink to a file inside the build folder (the same bytes the report names)."""
    (folder / "real.tflite").write_bytes(b"not yours")
    (folder / "model-fp32.tflite").symlink_to("real.tflite")
    return "model-fp32.tflite"


def _through_symlinked_folder(folder: Path, tmp_path: Path) -> str:
    """alias/ is a symlink to the build folder itself: every component resolves inside, one is a symlink."""
    (folder / "model-fp32.tflite").write_bytes(b"not yours")
    (folder / "alias").symlink_to(".")
    return "alias/model-fp32.tflite"


REPORT_PATHS: dict[str, tuple[Callable[[Path, Path], str], str]] = {
    "artifact-is-a-symlink-inside": (_symlinked_artifact, "goes through a symlink"),
    "path-through-a-symlinked-folder": (_through_symlinked_folder, "goes through a symlink"),
}


@pytest.mark.parametrize("case", sorted(REPORT_PATHS))
def test_report_paths_with_a_symlink_on_the_way_are_refused(case: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    make, needle = REPORT_PATHS[case]
    monkeypatch.chdir(tmp_path)
    folder = _fake_build(tmp_path, "placeholder")
    relative = make(folder, tmp_path)
    report = json.loads((folder / "report.json").read_text())
    report["artifacts"][0]["path"] = relative
    (folder / "report.json").write_text(json.dumps(report))
    one_error_line(_bundle(tmp_path), 2, needle, relative)
    _assert_nothing_bundled(tmp_path, folder)


def test_an_artifact_that_is_a_fifo_is_refused_unopened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = _fake_build(tmp_path, "model-fp32.tflite")
    os.mkfifo(folder / "model-fp32.tflite")
    with _fifo_watch(folder / "model-fp32.tflite") as opened:
        result = _bundle(tmp_path)
    one_error_line(result, 2, "model-fp32.tflite", "a FIFO, not a regular file")
    assert not opened.is_set(), "the FIFO was opened"
    _assert_nothing_bundled(tmp_path, folder)


# ---- samples.json: a regular file, checked before it is opened ---------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "symlink-out"])
def test_samples_json_that_is_not_a_regular_file(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = _fake_build(tmp_path, "model-fp32.tflite")
    (folder / "model-fp32.tflite").write_text("not yours")
    samples = folder / "samples.json"
    outside = tmp_path / "samples-elsewhere.json"
    outside.write_bytes(samples.read_bytes())
    samples.unlink()
    if kind == "fifo":
        os.mkfifo(samples)
    else:
        samples.symlink_to(outside)
    with _fifo_watch(samples) if kind == "fifo" else contextlib.nullcontext(threading.Event()) as opened:
        result = _bundle(tmp_path)
    one_error_line(result, 2, "samples.json", "a FIFO" if kind == "fifo" else "a symlink")
    assert not opened.is_set(), "samples.json was opened"
    _assert_nothing_bundled(tmp_path, folder)


# ---- TF.js manifests: every shard inside the model's folder, checked before Node starts --------------------------


def _tfjs_model(folder: Path, shard: str = "group1-shard1of1.bin") -> Path:
    """A two-node TF.js graph model (y = x + w, w = [0, 1, 2, 3]) whose manifest names `shard`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "group1-shard1of1.bin").write_bytes(WEIGHTS)
    node = {"name": "x", "op": "Placeholder", "attr": {"dtype": {"type": "DT_FLOAT"},
                                                         "shape": {"shape": {"dim": [{"size": "1"}, {"size": "4"}]}}}}
    const = {"name": "w", "op": "Const", "attr": {"dtype": {"type": "DT_FLOAT"}, "value": {"tensor": {
        "dtype": "DT_FLOAT", "tensorShape": {"dim": [{"size": "4"}]}}}}}
    add = {"name": "y", "op": "AddV2", "input": ["x", "w"], "attr": {"T": {"type": "DT_FLOAT"}}}
    (folder / "model.json").write_text(json.dumps({
        "format": "graph-model", "generatedBy": "hand", "convertedBy": "hand",
        "modelTopology": {"node": [node, const, add], "versions": {"producer": 1}},
        "weightsManifest": [{"paths": [shard], "weights": [{"name": "w", "shape": [4], "dtype": "float32"}]}]}))
    return folder


def _outside_secret_named(tmp_path: Path) -> str:
    (tmp_path / "secret.bin").write_bytes(WEIGHTS)
    return "../secret.bin"


def _absolute_secret(tmp_path: Path) -> str:
    _outside_secret_named(tmp_path)
    return str(tmp_path / "secret.bin")


def _shard_symlink(tmp_path: Path) -> str:
    _outside_secret_named(tmp_path)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "linked.bin").symlink_to(tmp_path / "secret.bin")
    return "linked.bin"


def _shard_fifo(tmp_path: Path) -> str:
    (tmp_path / "m").mkdir()
    os.mkfifo(tmp_path / "m" / "pipe.bin")
    return "pipe.bin"


SHARDS: dict[str, tuple[Callable[[Path], str], str]] = {
    "dot-dot": (_outside_secret_named, "points outside"),
    "absolute": (_absolute_secret, "points outside"),
    "symlink-out": (_shard_symlink, "goes through a symlink"),
    "fifo": (_shard_fifo, "a FIFO, not a regular file"),
}


@pytest.mark.parametrize("form", ["folder", "model.json"])
@pytest.mark.parametrize("case", sorted(SHARDS))
def test_profile_refuses_tfjs_shards_outside_the_model_folder(case: str, form: str, tmp_path: Path,
                                                              cache_dir: Path) -> None:
    make, needle = SHARDS[case]
    shard = make(tmp_path)
    model = _tfjs_model(tmp_path / "m", shard)
    before = sorted(tmp_path.rglob("*"))
    fifo = tmp_path / "m" / "pipe.bin"
    with _fifo_watch(fifo) if fifo.exists() else contextlib.nullcontext(threading.Event()) as opened:
        result = invoke("profile", model if form == "folder" else model / "model.json", "--out", tmp_path / "out",
                        "--runs", "1", "--warmup", "0", "--json")
    line = one_error_line(result, 2, needle, shard, "weightsManifest path")
    assert json_error(result)["type"] == "InputError" and len(line) < 400
    assert not opened.is_set(), "the shard was opened"
    assert sorted(tmp_path.rglob("*")) == before and not (tmp_path / "out").exists()


def test_profile_refuses_a_model_json_that_is_a_symlink(tmp_path: Path, cache_dir: Path) -> None:
    _tfjs_model(tmp_path / "elsewhere")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.json").symlink_to(tmp_path / "elsewhere" / "model.json")
    (tmp_path / "m" / "group1-shard1of1.bin").write_bytes(bytes(16))
    one_error_line(invoke("profile", tmp_path / "m", "--out", tmp_path / "out", "--runs", "1"), 2,
                   "model.json", "goes through a symlink")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_an_honest_tfjs_model_still_profiles(tmp_path: Path, cache_dir: Path) -> None:
    """The control: the same hand-written model with its shard in place runs in Node (so the refusals above are
    confinement, not a model Node could not load)."""
    from targets.runners.tfjs import check_installed

    try:
        check_installed()
    except Exception as exc:   # RunnerUnavailable: no node or no npm packages here
        pytest.skip(str(exc))
    model = _tfjs_model(tmp_path / "m")
    for path in (model, model / "model.json"):
        result = invoke("profile", path, "--out", tmp_path / "out", "--runs", "2", "--warmup", "0")
        assert result.exit_code == 0, result.output


# ---- names are checked before anything is replaced ---------------------------------------------------------------


@pytest.fixture()
def bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A hand-made linux-arm64 build with one .tflite, bundled once (the bundle a refused command must keep)."""
    monkeypatch.chdir(tmp_path)
    folder = _fake_build(tmp_path, "model-fp32.tflite")
    (folder / "model-fp32.tflite").write_text("not yours")     # the bytes _fake_build's sha256 stands for
    result = _bundle(tmp_path, "--name", "demo")
    assert result.exit_code == 0, result.output
    return folder


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_ino, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


BAD_NAMES = {
    "name-300-chars": (["--name", "n" * 300], ["bundle name (--name)", "300 characters", "at most 255"]),
    "name-fits-only-without-zip": (["--name", "n" * 252], ["--name", "252 characters long (256 with .zip)"]),
    "template-is-a-path": (["--template", "../../etc"], ["--template", "'../../etc'", "linux", "web"]),
    "template-unknown": (["--template", "androd"], ["--template", "android", "mcu"]),
}


@pytest.mark.parametrize("case", sorted(BAD_NAMES))
def test_bad_names_are_refused_before_the_old_bundle_is_touched(case: str, bundled: Path, tmp_path: Path) -> None:
    args, needles = BAD_NAMES[case]
    before = _snapshot(bundled)
    line = one_error_line(_bundle(tmp_path, *args), 2, *needles)
    assert "bundle name" not in line or case.startswith("name")    # a template is never blamed on the name
    assert _snapshot(bundled) == before and not list(bundled.glob(".*"))


def test_the_longest_name_that_fits_is_written(bundled: Path, tmp_path: Path) -> None:
    result = _bundle(tmp_path, "--name", "n" * 251)
    assert result.exit_code == 0, result.output
    assert (bundled / f"{'n' * 251}.zip").is_file() and not list(bundled.glob(".*partial"))


# ---- bundle files follow the umask ----------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask-022", "umask-077"])
def test_bundle_files_follow_the_umask(umask: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = _fake_build(tmp_path, "model-fp32.tflite")
    (folder / "model-fp32.tflite").write_text("not yours")
    old = os.umask(umask)
    try:
        result = _bundle(tmp_path, "--name", "demo")
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    bundle = folder / "bundle"
    for path in [bundle, *bundle.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & umask == 0 and mode & 0o600 == 0o600, (path, oct(mode))
    assert stat.S_IMODE((bundle / "models" / "model-fp32.tflite").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((folder / "demo.zip").stat().st_mode) == 0o666 & ~umask
    with zipfile.ZipFile(folder / "demo.zip") as zf:
        modes = {info.filename: (info.external_attr >> 16) & 0o777 for info in zf.infolist()}
    assert modes and all(mode & umask == 0 for mode in modes.values()), modes
    assert modes["demo/run.py"] == 0o777 & ~umask and modes["demo/config.json"] == 0o666 & ~umask


# ---- an output folder that is a mount point is filled in place ------------------------------------------------


def _busy_rename(monkeypatch: pytest.MonkeyPatch, mount: Path) -> None:
    """Renaming `mount` away fails as on a bind mount (EBUSY); everything else renames as usual."""
    real = os.replace

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if Path(src).absolute() == mount.absolute():
            raise OSError(errno.EBUSY, "Device or resource busy", str(src))
        real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


@pytest.fixture()
def bind_mount(tmp_path: Path) -> Iterator[Callable[[Path, Path], None]]:
    """`mount --bind source target` (root only), undone at the end."""
    if os.geteuid() != 0:
        pytest.skip("a bind mount needs root")
    mounted: list[Path] = []

    def bind(source: Path, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot bind-mount here: {proc.stderr.strip()}")
        mounted.append(target)

    yield bind
    for target in reversed(mounted):
        subprocess.run(["umount", str(target)], check=False)


def _volume(tmp_path: Path) -> Path:
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "left-from-last-time.txt").write_text("old")
    return volume


@pytest.mark.parametrize("how", ["simulated-ebusy", "real-bind-mount"])
def test_a_bundle_folder_that_is_a_mount_point_is_filled_in_place(how: str, bundled: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   request: pytest.FixtureRequest) -> None:
    target = bundled / "bundle"
    if how == "simulated-ebusy":
        (target / "left-from-last-time.txt").write_text("old")
        _busy_rename(monkeypatch, target)
        volume = target
    else:
        volume = _volume(tmp_path)
        shutil.rmtree(target)
        request.getfixturevalue("bind_mount")(volume, target)
    result = _bundle(tmp_path, "--name", "demo")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in volume.iterdir())
    assert "run.py" in names and "models" in names and "left-from-last-time.txt" not in names, names
    assert not [n for n in names if n.startswith(".")] and not list(bundled.glob(".bundle*"))
    assert (volume / "models" / "model-fp32.tflite").read_text() == "not yours"


def test_replace_in_place_puts_the_old_entries_back_when_a_move_fails(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    dest, staging = tmp_path / "android", tmp_path / ".android.staging-1"
    dest.mkdir(), staging.mkdir()
    for name in ("report.json", "model.pte"):
        (dest / name).write_text(f"old {name}")
        (staging / name).write_text(f"new {name}")
    (staging / "extra.onnx").write_text("new")
    _busy_rename(monkeypatch, dest)
    real, moved_in = os.replace, []

    def flaky(src: Any, dst: Any) -> None:
        """The second new entry cannot be moved in (after the first one was)."""
        if ".edgepipe-new-" in str(src):
            moved_in.append(src)
            if len(moved_in) == 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OSError, match="No space left"):
        replace_dir(staging, dest)
    assert len(moved_in) == 2
    assert {p.name: p.read_text() for p in dest.iterdir()} == {"report.json": "old report.json",
                                                               "model.pte": "old model.pte"}


@pytest.mark.slow
def test_a_build_into_a_bind_mounted_target_folder(tmp_path: Path, cache_dir: Path,
                                                   bind_mount: Callable[[Path, Path], None]) -> None:
    """The docker layout: `-v $PWD/android:/work/out/android`, the build's target folder is the mount point."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "edgepipe.toml").write_text(CHEAP)
    volume, out = _volume(tmp_path), tmp_path / "out"
    bind_mount(volume, out / "android")
    result = invoke("build", "--config", project / "edgepipe.toml", "--out", out)
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in volume.iterdir())
    assert {"report.json", "model-fp32.onnx", "samples.json"} <= set(names) and "left-from-last-time.txt" not in names
    assert not [n for n in names if n.startswith(".")] and sorted(p.name for p in out.iterdir()) == ["android"]
    assert json.loads((volume / "report.json").read_text())["passed"] is True
