"""A model server as a child process on 127.0.0.1: ready when its health check says so, and always stopped with
every process it started (its whole process tree, waited for, then killed).

The server stays in its caller's process group, so a build worker stopped by the job runner (timeout, Ctrl-C)
takes its server down with it; a server whose own launcher exits early is still stopped by its remembered tree.
A server that exits, does not become ready in time, or does not answer is one line naming the server and what
failed (exit 4), with the last exception from its log."""
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


def free_ports(count: int) -> list[int]:
    """`count` distinct ports nothing listens on now: every probe is held until all are chosen (the OS picks them;
    the server binds them moments later)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]


def free_port() -> int:
    return free_ports(1)[0]


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # loopback never goes through a proxy


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
        with _DIRECT.open(req, timeout=timeout_s) as answer:
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
    seen: dict[int, float] = field(default_factory=dict)    # pid -> start time of every process of its tree seen

    def start(self) -> None:
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                            cwd=self.cwd)
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
        """The health check, any failure of it meaning not ready yet (a half-started server answers oddly)."""
        self.tree_pids()
        try:
            return self.ready()
        except Exception:
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

    def tree_pids(self) -> list[int]:
        """Every live process the server started (its launcher's descendants now, and any seen before that was
        since re-parented, as Ray's reaper and a daemonising launcher are)."""
        if self.process is None:
            return []
        import psutil

        with contextlib.suppress(psutil.Error):
            launcher = psutil.Process(self.process.pid)
            for proc in [launcher, *launcher.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    self.seen.setdefault(proc.pid, proc.create_time())
        alive = []
        for pid, started in self.seen.items():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.create_time() == started and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
        return alive

    def rss_mb(self) -> float:
        """Resident memory of the whole server (every process it started), in MiB."""
        import psutil

        total = 0
        for pid in self.tree_pids():
            with contextlib.suppress(psutil.Error, OSError):
                total += psutil.Process(pid).memory_info().rss
        return total / 2**20

    def stop(self) -> None:
        """SIGTERM to the launcher (a server shuts its workers down), then to every process of its tree still
        running, then SIGKILL to whatever is left after STOP_WAIT_S."""
        if self.process is None:
            return
        self.tree_pids()
        self._signal([self.process.pid], signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(STOP_WAIT_S / 2)
        self._signal(self.tree_pids(), signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S / 2
        while self.tree_pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        self._signal(self.tree_pids(), signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        self.process = None

    @staticmethod
    def _signal(pids: list[int], sig: signal.Signals) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)


@contextlib.contextmanager
def running(server: ServerProcess) -> Iterator[ServerProcess]:
    server.start()
    try:
        yield server
    finally:
        server.stop()
