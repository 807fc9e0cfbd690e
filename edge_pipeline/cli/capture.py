"""Keeps native libraries' output off the terminal during a build, in a log file the report links to.

torchao, XNNPACK's cpuinfo, absl and oneDNN print from C++ straight to file descriptors 1 and 2, and Python
libraries print deprecation warnings to sys.stderr; none of it is edgepipe's to show. For the block, fds 1 and 2
and sys.stdout / sys.stderr point at the log, while edgepipe's own consoles write to the real terminal.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from rich.console import Console


@contextlib.contextmanager
def native_output_to(log_path: Path, consoles: list[Console]) -> Iterator[None]:
    """Redirects fds 1/2 and sys.stdout/stderr into `log_path`; `consoles` keep the terminal."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    saved: dict[int, int] = {}
    try:
        for fd in (1, 2):
            saved[fd] = os.dup(fd)
            os.dup2(log_fd, fd)
    except OSError:            # no fd 1/2 (a daemon, a test harness): keep the Python-level redirect only
        _restore(saved)
        saved = {}
    terminals = {"out": _terminal(sys.stdout, saved.get(1)), "err": _terminal(sys.stderr, saved.get(2))}
    previous = [(console, console._file) for console in consoles]
    for console in consoles:
        console.file = terminals["err" if console.stderr else "out"]
    old_out, old_err = sys.stdout, sys.stderr
    log_text = open(os.dup(log_fd), "w", buffering=1, encoding="utf-8", errors="replace")
    sys.stdout = sys.stderr = log_text
    try:
        yield
    finally:
        for stream in (log_text, *terminals.values()):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = old_out, old_err
        for console, file in previous:
            console._file = file
        _restore(saved)
        os.close(log_fd)


def _terminal(stream: TextIO, saved_fd: int | None) -> TextIO:
    """A stream to what `stream` wrote to before the redirect: the saved fd, or the object itself if it has none."""
    if saved_fd is None or not _has_fd(stream):
        return stream
    return open(saved_fd, "w", buffering=1, encoding=stream.encoding or "utf-8", errors="replace", closefd=False)


def _has_fd(stream: TextIO) -> bool:
    try:
        stream.fileno()
    except (AttributeError, io.UnsupportedOperation, ValueError, OSError):
        return False
    return True


def _restore(saved: dict[int, int]) -> None:
    for fd, copy in saved.items():
        os.dup2(copy, fd)
        os.close(copy)
