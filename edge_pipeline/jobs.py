"""Runs a stage job in a child process and turns its outcome (result, error or crash) into Python."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from .errors import StageFailed, rebuild_error

QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0", "TOKENIZERS_PARALLELISM": "false"}


def run_job(job: dict[str, Any], workdir: Path, label: str, timeout_s: float = 1800) -> dict[str, Any]:
    """Executes `job` in `python -m edge_pipeline.worker`; the child's output goes to workdir/worker.log."""
    workdir.mkdir(parents=True, exist_ok=True)
    job_file, result_file, log_file = workdir / "job.json", workdir / "result.json", workdir / "worker.log"
    result_file.unlink(missing_ok=True)
    job_file.write_text(json.dumps(job, default=str))
    env = {**os.environ, **QUIET_ENV}
    with open(log_file, "w") as log:
        try:
            proc = subprocess.run([sys.executable, "-m", "edge_pipeline.worker", str(job_file), str(result_file)],
                                  stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise StageFailed(f"{label}: timed out after {timeout_s:.0f} s (log: {log_file})") from exc
    if result_file.is_file():
        payload = json.loads(result_file.read_text())
        if payload.get("ok"):
            return payload["result"]
        raise rebuild_error(payload["error"])
    raise StageFailed(f"{label}: worker process {_describe_exit(proc.returncode)} (log: {log_file}){_tail(log_file)}")


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
