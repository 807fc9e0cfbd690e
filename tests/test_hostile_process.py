"""Hostile processes, plugins and streams (issue 19, parts of classes 4, 7 and 8): a broken or clashing third-party
plugin is named and the rest still listed; SIGHUP stops a build like SIGTERM (exit 129); a killed build's work
folder is removed by the next run, never a live one's; a worker that dies says why (a full disk, the model's code
exiting it) and names only a log that exists; results that cannot be written to stdout are one line, exit 3.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_pipeline import api, registry
from edge_pipeline.building import cache

from .conftest import EDGEPIPE, run_cli
from .test_hostile_inputs import (  # noqa: F401  (full_disk: a fixture)
    _art,
    _dead_pid,
    _gone,
    _report,
    _start_build,
    full_disk,
    invoke,
    one_error_line,
)

ROOT = Path(__file__).resolve().parents[1]
LOG = " (log: "

# ---- third-party plugins: each broken or hidden one is named, every working one is listed ---------------------

PLUGINS = '''
from edge_pipeline.types import OutputSpec, Target
from targets.exporters.onnx import OnnxExporter

empty = Target(name="empty-outputs", description="builds nothing", outputs=())
android = Target(name="android", description="an impostor", outputs=(OutputSpec("onnx", "fp32"),))
works = Target(name="third-party-ok", description="a working one", outputs=(OutputSpec("onnx", "fp32"),))


class Impostor(OnnxExporter):
    """Registered as 'onnx', like the built-in."""
'''
ENTRY_POINTS = """[edgepipe.targets]
empty-outputs = edgepipe_hostile_plugins:empty
android = edgepipe_hostile_plugins:android
third-party-ok = edgepipe_hostile_plugins:works
import-error = edgepipe_hostile_broken:target
gone-module = edgepipe_hostile_not_installed:target

[edgepipe.exporters]
onnx = edgepipe_hostile_plugins:Impostor
"""
BROKEN = {"import-error": "RuntimeError: broken on purpose", "gone-module": "its module is not installed",
          "empty-outputs": "'outputs' is empty"}
HIDDEN = {"target": "edgepipe-hostile's target 'android'", "exporter": "edgepipe-hostile's exporter 'onnx'"}


@pytest.fixture()
def hostile_site(tmp_path: Path) -> Path:
    """The distribution `edgepipe-hostile` on a temporary path, as pip would install it."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "edgepipe_hostile_plugins.py").write_text(PLUGINS)
    (site / "edgepipe_hostile_broken.py").write_text('raise RuntimeError("broken on purpose")\n')
    info = site / "edgepipe_hostile-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: edgepipe-hostile\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return site


@pytest.fixture()
def hostile_plugins(hostile_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The same, found by this process's registry (its entry-point cache cleared before and after)."""
    monkeypatch.syspath_prepend(str(hostile_site))
    registry._entry_points.cache_clear()
    yield
    registry._entry_points.cache_clear()
    for name in [m for m in sys.modules if m.startswith("edgepipe_hostile")]:
        monkeypatch.delitem(sys.modules, name)


def _env(site: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _check_warnings(warnings: list[str], listing: str) -> None:
    """Each broken target named with its distribution and reason; each clash (an exporter too, for `plugins`)."""
    for name, reason in BROKEN.items():
        (line,) = [w for w in warnings if f"'{name}'" in w]
        assert "edgepipe-hostile" in line and reason in line, line
    for kind in ("target", "exporter") if listing == "plugins" else ("target",):
        (line,) = [w for w in warnings if HIDDEN[kind] in w]
        assert "is hidden: the built-in" in line, line


@pytest.mark.parametrize("listing", ["plugins", "targets"])
def test_api_listing_names_broken_and_hidden_plugins(listing: str, hostile_plugins: None) -> None:
    found = api.plugins() if listing == "plugins" else api.targets()
    names = {(getattr(r, "kind", "target"), r.name) for r in found}
    assert {("target", n) for n in ("android", "web", "ios", "mcu", "third-party-ok")} <= names
    assert not names & {("target", n) for n in BROKEN}
    _check_warnings(found.warnings, listing)  # type: ignore[attr-defined]


@pytest.mark.parametrize("listing", ["plugins", "targets"])
def test_cli_listing_warns_on_stderr_and_in_json(listing: str, hostile_site: Path) -> None:
    proc = run_cli(listing, "--json", env=_env(hostile_site), timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["warnings"] == [line.removeprefix("warning: ") for line in proc.stderr.splitlines()]
    _check_warnings(payload["warnings"], listing)
    listed = {r["name"] for r in payload[listing]}
    assert "third-party-ok" in listed and "android" in listed and not listed & set(BROKEN)


@pytest.mark.parametrize("target", sorted(BROKEN))
def test_a_build_that_needs_a_broken_plugin_fails_naming_it(target: str, hostile_site: Path, tmp_path: Path,
                                                            cache_dir: Path) -> None:
    proc = run_cli("build", "--target", target, "--out", str(tmp_path / "out"), cwd=tmp_path,
                   env=_env(hostile_site), timeout=120)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert f"'{target}'" in line and "edgepipe-hostile" in line and BROKEN[target] in line, line
    assert not (tmp_path / "out").exists()


# ---- signals and the work folders they leave -------------------------------------------------------------------


def _work_of(cache_dir: Path, pid: int) -> list[Path]:
    return list((cache_dir / "work").glob(f"*-{pid}-*"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sighup_stops_the_build_like_sigterm(tmp_path: Path, cache_dir: Path) -> None:
    proc, workers = _start_build(tmp_path)
    os.kill(proc.pid, signal.SIGHUP)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 129, stderr
    (line,) = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert "interrupted (SIGHUP)" in line and "nothing was written" in line and "Traceback" not in stderr + stdout
    assert _gone(workers, 5) and not _work_of(cache_dir, proc.pid)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_next_run_removes_a_killed_builds_work_folder(tmp_path: Path, cache_dir: Path) -> None:
    for run in ("first", "second"):
        (tmp_path / run).mkdir()
    killed, _ = _start_build(tmp_path / "first")
    os.kill(killed.pid, signal.SIGKILL)
    killed.communicate(timeout=30)
    (left,) = _work_of(cache_dir, killed.pid)
    assert json.loads((left / cache.OWNER).read_text())["pid"] == killed.pid
    second, _ = _start_build(tmp_path / "second")   # its first worker runs once it has swept the work folders
    try:
        assert not left.exists() and _work_of(cache_dir, second.pid)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 143


OWN_START = cache._started(os.getpid())
OWNERS: dict[str, tuple[Any, float, bool]] = {   # marker (None: none, str: raw bytes), age in hours, kept?
    "dead-owner": (lambda: {"pid": _dead_pid(), "start": None, **cache._here()}, 0, False),
    "live-owner": (lambda: {"pid": os.getpid(), "start": OWN_START, **cache._here()}, 0, True),
    "reused-pid": (lambda: {"pid": os.getpid(), "start": (OWN_START or 0) + 1, **cache._here()}, 0, False),
    "before-reboot": (lambda: {**cache._here(), "pid": os.getpid(), "start": OWN_START, "boot": "x"}, 0, False),
    "no-marker-fresh": (lambda: None, 0, True),
    "no-marker-old": (lambda: None, 7, False),
    "other-host-fresh": (lambda: {"pid": 1, "start": 1, "host": "elsewhere", "boot": "x", "pidns": "x"}, 1, True),
    "other-host-old": (lambda: {"pid": 1, "start": 1, "host": "elsewhere", "boot": "x", "pidns": "x"}, 7, False),
    "garbage-marker-fresh": (lambda: "{not json", 0, True),
}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("case", sorted(OWNERS))
def test_stale_work_folders_go_and_live_ones_stay(case: str, tmp_path: Path) -> None:
    make, hours, kept = OWNERS[case]
    folder = tmp_path / "work" / f"android-{case}"
    (folder / "source").mkdir(parents=True)
    (folder / "source" / "worker.log").write_text("scratch")
    marker = make()
    if marker is not None:
        (folder / cache.OWNER).write_text(marker if isinstance(marker, str) else json.dumps(marker))
    old = time.time() - hours * 3600
    os.utime(folder, (old, old))
    (tmp_path / "work" / "a-file").write_text("not a folder: left alone")
    removed = cache.remove_stale_work(tmp_path / "work")
    assert folder.exists() is kept and (removed == [] if kept else removed == [folder])
    assert (tmp_path / "work" / "a-file").is_file()


# ---- a worker that dies says why, and names only a log that exists ----------------------------------------------

MODELS = {   # the model module's body, exit code, words of the one line
    "sys-exit": ("def make():\n    return Exits()\n\nclass Exits(nn.Module):\n    def forward(self, x):\n"
                 "        sys.exit(3)\n", 4, ("exited the worker with sys.exit(3)", ".py:")),
    "os-exit": ("def make():\n    return Exits()\n\nclass Exits(nn.Module):\n    def forward(self, x):\n"
                "        print('about to leave', flush=True)\n        os._exit(3)\n", 4,
                ("source:", "exited the worker with code 3")),
    "enospc-raised": ("def make():\n    raise OSError(28, 'No space left on device', '/x/cache-disk/blob')\n", 3,
                      ("disk full on /x/cache-disk/blob",)),
    "enospc-in-log": ("def make():\n    print(\"OSError: [Errno 28] No space left on device: '/x/y'\", "
                      "file=sys.stderr, flush=True)\n    os._exit(1)\n", 3, ("disk full on /x/y",)),
}


def _model_project(tmp_path: Path, case: str, body: str, example_inputs: str = "[1, 4]") -> Path:
    """A config whose model is `make()` in a module of its own (the body imports os, sys and torch's nn)."""
    module = f"hostile_{case.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(f"import os\nimport sys\n\nfrom torch import nn\n\n\n{body}")
    (tmp_path / "edgepipe.toml").write_text(f'model = "{module}:make"\nexample-inputs = {example_inputs}\n'
                                            f'[targets.android]\nformats = ["onnx:fp32"]\n')
    return tmp_path / "edgepipe.toml"


def _named_log_exists(line: str) -> None:
    if LOG in line:
        assert Path(line.split(LOG, 1)[1].split(")", 1)[0]).is_file(), line


@pytest.mark.parametrize("case", sorted(MODELS))
def test_a_worker_that_dies_says_why(case: str, tmp_path: Path, cache_dir: Path) -> None:
    body, code, needles = MODELS[case]
    result = invoke("build", "--config", _model_project(tmp_path, case, body), "--out", tmp_path / "out")
    _named_log_exists(one_error_line(result, code, *needles, progress=True))
    assert not (tmp_path / "out").exists()


def test_a_full_cache_disk_is_named_without_a_missing_log(full_disk: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEPIPE_CACHE_DIR", str(full_disk))   # 100 KB: the source stage's files do not fit
    config = _model_project(tmp_path, "big", "def make():\n    return nn.Linear(50000, 2)\n", "[4, 50000]")
    result = invoke("build", "--config", config, "--out", tmp_path / "out")
    _named_log_exists(one_error_line(result, 3, f"disk full on {full_disk}", progress=True))
    assert not (tmp_path / "out").exists() and not list((full_disk / "work").iterdir())


def test_warnings_above_point_at_the_log_that_holds_them(tmp_path: Path, cache_dir: Path) -> None:
    with zipfile.ZipFile(tmp_path / "model.pt2", "w") as archive:
        archive.writestr("junk", "not an export")
    (tmp_path / "edgepipe.toml").write_text('model = "model.pt2"\nexample-inputs = [1, 4]\n')
    result = invoke("build", "--config", tmp_path / "edgepipe.toml", "--out", tmp_path / "out")
    line = one_error_line(result, 2, "model.pt2", "The warnings are in ", progress=True)
    assert "warnings above" not in line
    log = Path(line.split("The warnings are in ", 1)[1].split(" (last: ", 1)[0].rstrip("."))
    assert "Ran into the following error" in log.read_text() and not (tmp_path / "out").exists()


# ---- results that cannot be written to stdout: one line, exit 3 -------------------------------------------------

STDOUT = {   # arguments (R: a passing report, BAD: a broken one), exit code, words of the one line
    "gate-json": (["gate", "R", "--json"], 3, "cannot write the results to stdout: no space left"),
    "gate-table": (["gate", "R"], 3, "cannot write the results to stdout: no space left"),
    "plugins-json": (["plugins", "--json"], 3, "cannot write the results to stdout: no space left"),
    "bad-report-json": (["gate", "BAD", "--json"], 2, "is not an edgepipe report"),   # its own error wins
}


@pytest.mark.parametrize("case", sorted(STDOUT))
def test_stdout_on_a_full_device(case: str, tmp_path: Path) -> None:
    args, code, needle = STDOUT[case]
    (tmp_path / "R").write_text(json.dumps(_report([_art("onnx", "fp32")])))
    (tmp_path / "BAD").write_text("{}")
    before = sorted(tmp_path.iterdir())
    with open("/dev/full", "w") as full:
        proc = subprocess.run([*EDGEPIPE, *args], cwd=tmp_path, stdout=full, stderr=subprocess.PIPE, text=True,
                              timeout=120)
    assert proc.returncode == code, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: ") and needle in line, line
    assert sorted(tmp_path.iterdir()) == before


def test_stdout_pipe_closed_by_its_reader(tmp_path: Path) -> None:
    proc = subprocess.Popen([*EDGEPIPE, "plugins", "--json"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # type: ignore[union-attr]  (like `edgepipe plugins --json | head -0`)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 3 and stderr == "error: cannot write the results to stdout: the program reading it " \
        "closed the pipe\n", stderr
    assert not list(tmp_path.iterdir())
