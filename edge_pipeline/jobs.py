"""Runs a stage job in a child process and turns its outcome (result, error or crash) into Python.

Workers die with the command that started them: each runs in its own process group (so a stop reaches the
converters it started too), is killed by the kernel when its parent dies (the worker asks for it, see worker.py),
and `stop_all()` (called on Ctrl-C / SIGTERM) kills every running group and refuses new jobs.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from .errors import StageFailed, rebuild_error

QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0", "TOKENIZERS_PARALLELISM": "false"}
PARENT_ENV = "EDGEPIPE_PARENT_PID"
# Thread pools of the native libraries a worker loads (OpenMP/MKL under torch, TensorFlow's own pools).
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
              "TF_NUM_INTEROP_THREADS")

_live: set[subprocess.Popen] = set()
_lock = threading.RLock()   # re-entrant: stop_all() runs in a signal handler, maybe inside _start or _stop
_stopping = threading.Event()


def run_job(job: dict[str, Any], workdir: Path, label: str, timeout_s: float = 1800,
            threads: int | None = None) -> dict[str, Any]:
    """Executes `job` in `python -m edge_pipeline.worker`; the child's output goes to workdir/worker.log.

    `threads` caps the worker's native thread pools: workers that run side by side must share the cores, since
    oversubscribed OpenMP pools spin against each other (PT2E calibration ran 7x slower with two 2-thread
    workers on 2 cores than with two 1-thread ones)."""
    workdir.mkdir(parents=True, exist_ok=True)
    job_file, result_file, log_file = workdir / "job.json", workdir / "result.json", workdir / "worker.log"
    result_file.unlink(missing_ok=True)
    job_file.write_text(json.dumps(job, default=str))
    env = {**os.environ, **QUIET_ENV, PARENT_ENV: str(os.getpid())}
    if threads is not None:
        env.update({name: str(threads) for name in THREAD_ENV})
    command = [sys.executable, "-m", "edge_pipeline.worker", str(job_file), str(result_file)]
    with open(log_file, "w") as log:
        proc = _start(command, log, env, label)
        try:
            returncode = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise StageFailed(f"{label}: timed out after {timeout_s:.0f} s (log: {log_file})") from exc
        finally:
            _stop(proc)
    if _stopping.is_set():
        raise StageFailed(f"{label}: stopped (the command was interrupted)")
    if result_file.is_file():
        payload = json.loads(result_file.read_text())
        if payload.get("ok"):
            return payload["result"]
        raise rebuild_error(payload["error"])
    raise StageFailed(f"{label}: worker process {_describe_exit(returncode)} (log: {log_file}){_tail(log_file)}")


def stop_all() -> None:
    """Kills every running worker's process group and refuses new jobs until `allow_new_jobs()`."""
    _stopping.set()
    with _lock:
        running = list(_live)
    for proc in running:
        _kill_group(proc)


def allow_new_jobs() -> None:
    _stopping.clear()


def _start(command: list[str], log: Any, env: dict[str, str], label: str) -> subprocess.Popen:
    with _lock:
        if _stopping.is_set():
            raise StageFailed(f"{label}: not started (the command was interrupted)")
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
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


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"crashed with {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code} without a result"


def _tail(log_file: Path, lines: int = 3) -> str:
    try:
        tail = [ln for ln in log_file.read_text(errors="replace").splitlines() if ln.strip()][-lines:]
    except OSError:
        return ""
    return ("; last output: " + " | ".join(tail)) if tail else ""
