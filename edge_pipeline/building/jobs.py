"""Runs a stage job in a child process and turns its outcome (result, error or crash) into Python.

Workers die with the command that started them: each runs in its own process group (so a stop reaches the
converters it started too), is killed by the kernel when its parent dies (the worker asks for it, see worker.py),
and `stop_all()` (called on Ctrl-C / SIGTERM / SIGHUP) kills every running group and refuses new jobs.

A worker that ends without a result is explained in one line: a full disk (from its status pipe or its log) names
where, an exit names its code, a crash its signal; an error names its log only where the log exists (one in a work
folder, removed when the build ends, is copied to the cache's logs/ first).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar, Union

from edge_pipeline.building import cache
from edge_pipeline.building.worker import STATUS_ENV, disk_full, disk_is_full
from edge_pipeline.codec import decode, encode
from edge_pipeline.errors import EdgepipeError, StageFailed, rebuild_error
from edge_pipeline.fsutil import remove_stale_siblings
from edge_pipeline.records import STAGES
from edge_pipeline.types import JsonObject, JsonValue

QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0", "TOKENIZERS_PARALLELISM": "false"}
PARENT_ENV = "EDGEPIPE_PARENT_PID"
TEMP_PREFIX = "edgepipe-job-"      # a worker's temporary folder: edgepipe-job-<random>-<pid of the build>
POLL_S = 0.05
# Thread pools of the native libraries a worker loads (OpenMP/MKL under torch, TensorFlow's own pools).
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
              "TF_NUM_INTEROP_THREADS")
NO_SPACE = re.compile(r"(?:No space left on device|Disk quota exceeded)(?::\s*'([^']+)')?")
ERROR_LINE = re.compile(r"\b(?:\w+(?:Error|Exception)\b|Fatal Python error|error:).*")
WARNINGS_ABOVE = re.compile(r"\s*(?:please\s+)?(?:check|see)\s+the\s+warnings?\s+above[^.]*\.?", re.IGNORECASE)

_live: set[subprocess.Popen] = set()
_lock = threading.RLock()   # re-entrant: stop_all() runs in a signal handler, maybe inside _start or _stop
_stopping = threading.Event()


R = TypeVar("R")


@dataclass(frozen=True)
class Job:
    stage: str           # a key of records.STAGES
    record: object       # that stage's job record
    workdir: Path        # job.json, result.json and (for a lane's first job) worker.log go here
    label: str

    @property
    def payload(self) -> JsonObject:
        return {"stage": self.stage, "job": encode(self.record)}

    def result(self, outcome: JsonValue) -> object:
        """The worker's encoded result as this stage's result record."""
        return decode(STAGES[self.stage][1], outcome)


Outcome = Union[object, EdgepipeError]


def run_job(job: Job, result_type: type[R], timeout_s: float = 1800, threads: int | None = None) -> R:
    """Executes `job` in `python -m edge_pipeline.building.worker`; the child's output goes to workdir/worker.log."""
    outcome = run_lane([job], timeout_s, threads)[0]
    if isinstance(outcome, EdgepipeError):
        raise outcome
    if not isinstance(outcome, result_type):
        raise StageFailed(f"{job.label}: the worker returned a {type(outcome).__name__}, not a {result_type.__name__}")
    return outcome


def run_lane(jobs: list[Job], timeout_s: float = 1800, threads: int | None = None,
             on_done: Callable[[int, Outcome], None] = lambda *_: None) -> list[Outcome]:
    """Runs `jobs` one after another in one worker process, so that the lane imports its frameworks once.

    Each job has `timeout_s`; `on_done(i, outcome)` is called as each finishes. A job that crashes or hangs the
    worker fails alone: the jobs after it run in a fresh worker. `threads` caps the worker's native thread
    pools: workers side by side must share the cores, since oversubscribed OpenMP pools spin against each other
    (PT2E calibration ran 7x slower with two 2-thread workers on 2 cores than with two 1-thread ones)."""
    outcomes: list[Outcome] = []
    while len(outcomes) < len(jobs):
        rest = jobs[len(outcomes):]
        for outcome in _run_worker(rest, timeout_s, threads):
            on_done(len(outcomes), outcome)
            outcomes.append(outcome)
    return outcomes


def _run_worker(jobs: list[Job], timeout_s: float, threads: int | None) -> Iterator[Outcome]:
    """Yields the outcomes of `jobs` as the worker finishes them; stops after the first one that has none."""
    command = [sys.executable, "-m", "edge_pipeline.building.worker"]
    for job in jobs:
        cache.make_workdir(job.workdir)
        (job.workdir / "result.json").unlink(missing_ok=True)
        (job.workdir / "job.json").write_text(json.dumps(job.payload))
        command += [str(job.workdir / "job.json"), str(job.workdir / "result.json")]
    env = {**os.environ, **QUIET_ENV, PARENT_ENV: str(os.getpid())}
    if threads is not None:
        env.update({name: str(threads) for name in THREAD_ENV})
    log_file = jobs[0].workdir / "worker.log"
    with _temp_folder(env), open(log_file, "w") as log, _status_pipe(env) as status:
        try:
            proc = _start(command, log, env, jobs[0].label, status)
        except StageFailed as exc:    # interrupted: every job left gets this answer, none starts
            yield exc
            return
        try:
            for job in jobs:
                outcome = _wait_for(job, proc, timeout_s, log_file, status[0])
                yield outcome
                if not (job.workdir / "result.json").is_file():
                    return           # no result: the worker is gone or was stopped; the rest get a fresh one
        finally:
            _stop(proc)


def _wait_for(job: Job, proc: subprocess.Popen, timeout_s: float, log_file: Path, status: int) -> Outcome:
    result_file = job.workdir / "result.json"
    deadline = time.monotonic() + timeout_s
    while not result_file.is_file():
        if _stopping.is_set():
            return StageFailed(f"{job.label}: stopped (the command was interrupted)")
        if proc.poll() is not None and not result_file.is_file():
            return _ended(job, proc.returncode, log_file, _last_words(status))
        if time.monotonic() > deadline:
            return StageFailed(f"{job.label}: timed out after {timeout_s:.0f} s{_log_note(log_file)}")
        time.sleep(POLL_S)
    payload = json.loads(result_file.read_text())
    if payload.get("ok"):
        return job.result(payload["result"])
    error = payload["error"]
    return rebuild_error({**error, "message": _warnings_in_log(str(error.get("message", "")), log_file)})


def _ended(job: Job, code: int, log_file: Path, words: JsonObject | None) -> EdgepipeError:
    """Why the worker ended without a result: its own last words, else what its exit code and log show."""
    if words is not None:
        return rebuild_error(words)
    lines = _log_lines(log_file)
    full = next((m for line in reversed(lines) if (m := NO_SPACE.search(line))), None)
    if full is not None or (not lines and disk_is_full(job.workdir)):
        return disk_full(full.group(1) if full is not None and full.group(1) else job.workdir)
    error = _last_error(lines)
    last = f"; last error: {error}" if error else (f"; last output: {lines[-1][:300]}" if lines else "")
    if code < 0:
        how = f"worker process {_describe_crash(code)}"
    elif code == 1 and any(line.startswith("Traceback") for line in lines):
        how = "worker process failed"             # Python's own exit for an exception the worker did not catch
    else:
        how = (f"the model's code (or a converter it ran) exited the worker with code {code} (os._exit, or exit "
               f"in native code) before it reported a result")
    return StageFailed(f"{job.label}: {how}{last}{_log_note(log_file)}")


def _warnings_in_log(message: str, log_file: Path) -> str:
    """Libraries say "check the warnings above" of warnings that went to the worker's log, not the terminal:
    the message points at the log (and its last error) instead, or drops the phrase when there is none."""
    if not WARNINGS_ABOVE.search(message):
        return message
    kept = cache.keep_log(log_file)
    last = _last_error(_log_lines(log_file))
    note = f" The warnings are in {kept}{f' (last: {last})' if last else ''}." if kept else ""
    return WARNINGS_ABOVE.sub(lambda _: note, message, count=1).strip()


def _log_note(log_file: Path) -> str:
    kept = cache.keep_log(log_file)
    return f" (log: {kept})" if kept else ""


def _log_lines(log_file: Path, limit: int = 200) -> list[str]:
    try:
        with open(log_file, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 64 * 1024))
            text = log.read().decode(errors="replace")
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip()][-limit:]


def _last_error(lines: list[str]) -> str | None:
    """The last line that reads as an error, from the exception's name on."""
    found = next((m.group(0) for line in reversed(lines) if (m := ERROR_LINE.search(line))), None)
    return found[:300] if found else None


@contextlib.contextmanager
def _temp_folder(env: dict[str, str]) -> Iterator[None]:
    """A temporary folder of the worker's own (its TMPDIR), removed once the worker and its process group are
    stopped: converters' temporary files (onnx2tf's, multiprocessing's, a bridge's SavedModel) and whatever a
    killed or crashed worker left go with it. Its name ends with this process's pid, so the folders of a build
    that was itself killed are removed by the next one; when none can be made, the worker uses the default."""
    parent = Path(tempfile.gettempdir())
    remove_stale_siblings(parent / TEMP_PREFIX, f"{TEMP_PREFIX}*")
    try:
        folder: str | None = tempfile.mkdtemp(prefix=TEMP_PREFIX, suffix=f"-{os.getpid()}", dir=parent)
    except OSError:
        folder = None
    if folder is not None:
        env["TMPDIR"] = folder
    try:
        yield
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _status_pipe(env: dict[str, str]) -> Iterator[tuple[int, int]]:
    """A pipe the worker explains an end without a result on (worker.py's `_last_words`); read without waiting."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    env[STATUS_ENV] = str(write_fd)
    try:
        yield read_fd, write_fd
    finally:
        os.close(read_fd)
        os.close(write_fd)


def _last_words(read_fd: int) -> JsonObject | None:
    try:
        words = json.loads(os.read(read_fd, 65536))
    except (OSError, ValueError):
        return None
    return words if isinstance(words, dict) else None


def stop_all() -> None:
    """Kills every running worker's process group and refuses new jobs until `allow_new_jobs()`."""
    _stopping.set()
    with _lock:
        running = list(_live)
    for proc in running:
        _kill_group(proc)


def allow_new_jobs() -> None:
    _stopping.clear()


def _start(command: list[str], log: IO[str], env: dict[str, str], label: str,
           status: tuple[int, int]) -> subprocess.Popen[bytes]:
    with _lock:
        if _stopping.is_set():
            raise StageFailed(f"{label}: not started (the command was interrupted)")
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True, pass_fds=(status[1],))
        _live.add(proc)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    """Whatever ended the wait (done, timeout, interrupt), nothing of this job keeps running."""
    _kill_group(proc)
    proc.wait()
    with _lock:
        _live.discard(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)   # the worker leads its own group: converters it started go too
    except (ProcessLookupError, PermissionError):
        pass


def _describe_crash(code: int) -> str:
    try:
        return f"crashed with {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"
