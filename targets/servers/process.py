"""A model server as a child process on 127.0.0.1: started in its own session, ready when its health check says
so, and always stopped with everything it started (the whole process group, waited for, then killed).

A server that exits, does not become ready in time, or cannot get its port is one line naming the server and
what failed (exit 4), with the last line of its log."""
from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edge_pipeline.errors import StageFailed

STOP_WAIT_S = 20.0
EXCEPTION_LINE = re.compile(r"^\s*[\w.$]+(Error|Exception): ")


def free_port() -> int:
    """A port nothing listens on now (the OS picks it; the server binds it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Reply:
    status: int
    body: bytes
    seconds: float


def request(url: str, body: bytes | None = None, content_type: str = "application/json",
            timeout_s: float = 30.0) -> Reply:
    """One HTTP request; an error status is a Reply too (only a refused or timed-out connection raises)."""
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type} if body is not None else {})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as answer:
            return Reply(answer.status, answer.read(), time.perf_counter() - started)
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.read(), time.perf_counter() - started)


@dataclass
class ServerProcess:
    """`name` names the server in every error; `ready` is asked until it returns True or `start_timeout_s`."""

    name: str
    argv: list[str]
    log: Path
    ready: Callable[[], bool]
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    cwd: Path | None = None
    start_timeout_s: float = 120.0
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                            cwd=self.cwd, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout_s
        try:
            while not self._answers():
                if self.process.poll() is not None:
                    raise StageFailed(f"{self.name} exited with code {self.process.returncode} before it was ready: "
                                      f"{self.last_log_line()}")
                if time.monotonic() > deadline:
                    raise StageFailed(f"{self.name} was not ready within {self.start_timeout_s:.0f} s: "
                                      f"{self.last_log_line()}")
                time.sleep(0.25)
        except BaseException:
            self.stop()
            raise

    def _answers(self) -> bool:
        try:
            return self.ready()
        except (OSError, ValueError):
            return False

    def last_log_line(self) -> str:
        """The log's last exception line (`java.io.IOException: ...`, a Python traceback's last line), else its last
        line that mentions an error, else its last line."""
        try:
            lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return "(no log)"
        raised = [line for line in lines if EXCEPTION_LINE.match(line)]
        errors = [line for line in lines if "Error" in line or "Exception" in line or "error:" in line]
        return (raised or errors or lines or ["(its log is empty)"])[-1].strip()[:300]

    def group_pids(self) -> list[int]:
        """Every live process of the server's session (its workers included)."""
        if self.process is None:
            return []
        import psutil

        found = []
        for proc in psutil.process_iter(["pid"]):
            with contextlib.suppress(psutil.Error):
                if os.getsid(proc.info["pid"]) == self.process.pid:
                    found.append(proc.info["pid"])
        return found

    def rss_mb(self) -> float:
        """Resident memory of the whole server (every process of its session), in MiB."""
        import psutil

        total = 0
        for pid in self.group_pids():
            with contextlib.suppress(psutil.Error, OSError):
                total += psutil.Process(pid).memory_info().rss
        return total / 2**20

    def stop(self) -> None:
        """SIGTERM to the session's group, then SIGKILL to whatever is left after STOP_WAIT_S."""
        if self.process is None:
            return
        pgid = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        while self.group_pids() and time.monotonic() < deadline:
            self.process.poll()
            time.sleep(0.2)
        for pid in self.group_pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        self.process = None


@contextlib.contextmanager
def running(server: ServerProcess) -> Iterator[ServerProcess]:
    server.start()
    try:
        yield server
    finally:
        server.stop()
