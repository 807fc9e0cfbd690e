"""The command line's one error handler: any exception becomes one line on stderr and a documented exit code.

Commands raise; they do not catch. `GuardedGroup` (the root typer group) maps EdgepipeError to its own code,
a full disk or an unusable path to 3 / 2, Ctrl-C, SIGTERM and SIGHUP (a closed terminal or SSH session) to 130,
143 and 129 (128 + the signal) after stopping every worker process, and anything else to 4 with the traceback in
a log file. With `--json`, stdout always gets `{"passed": false, "error": {...}}`. `EDGEPIPE_DEBUG=1` also
prints the traceback. Stdout is flushed inside the guard: results that cannot be written there (a full disk,
`/dev/full`, a pipe whose reader is gone) are one line and exit 3, never a traceback at interpreter exit.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import FrameType
from typing import TextIO

import typer
from rich.console import Console
from rich.markup import escape
from typer._click.core import Context
from typer._click.exceptions import ClickException
from typer.core import TyperGroup

from edge_pipeline.building import jobs
from edge_pipeline.errors import (
    EXIT_INTERRUPTED,
    EXIT_SIGNAL_BASE,
    EdgepipeError,
    EnvironmentProblem,
    InputError,
    StdoutUnwritable,
)
from edge_pipeline.fsutil import DiskFull, is_disk_full
from edge_pipeline.types import JsonObject

MAX_MESSAGE = 600
USER_PATH_ERRORS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.ENOENT,
                    errno.ENAMETOOLONG, errno.EEXIST, errno.ELOOP)
err_console = Console(stderr=True)
out_console = Console(width=shutil.get_terminal_size((120, 24)).columns)   # stdout: tables, --json
_watched: list[tuple[Path, int | None]] = []   # output folders a command writes, with their state before it
# The signals that stop a command, and how its one line names them (exit code: 128 + the signal's number).
STOP_SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM",
                **({signal.SIGHUP: "SIGHUP"} if hasattr(signal, "SIGHUP") else {})}
DONE = (SystemExit, typer.Exit, typer.Abort)   # how a command ends on purpose (typer.Exit carries the code)


class GuardedGroup(TyperGroup):
    """Root group whose `invoke` wraps every command, nested ones (`baseline update`) included."""

    def invoke(self, ctx: Context) -> object:
        as_json = "--json" in [*ctx._protected_args, *ctx.args]
        _watched.clear()
        jobs.allow_new_jobs()
        with _signals_interrupt() as received:
            try:
                with _stdout_checked():
                    return super().invoke(ctx)
            except DONE:
                raise
            except ClickException as exc:         # usage errors: typer prints its own box and exits 2
                if as_json:
                    _print_json({"type": "UsageError", "message": exc.format_message()})
                raise
            except KeyboardInterrupt:
                jobs.stop_all()
                signum = received.get("signum", EXIT_INTERRUPTED - EXIT_SIGNAL_BASE)   # none: Ctrl-C
                report(EdgepipeError(f"interrupted ({STOP_SIGNALS.get(signum, 'Ctrl-C')}): {_kept()}"), as_json,
                       "Interrupted")
                raise typer.Exit(EXIT_SIGNAL_BASE + signum) from None
            except BaseException as exc:  # noqa: BLE001  (the one place every failure is turned into a line)
                error = classify(exc)
                if isinstance(error, StdoutUnwritable):
                    _stdout_to_devnull()
                report(error, as_json, cause=exc)
                raise typer.Exit(error.exit_code) from None


def watch_output(path: Path) -> None:
    """Records an output folder or file so that an interrupt can say what was kept there."""
    _watched.append((path, _stamp(path)))


def classify(exc: BaseException) -> EdgepipeError:
    """The EdgepipeError that stands for `exc`: its own class, or the closest documented kind."""
    if isinstance(exc, EdgepipeError):
        return exc
    if is_disk_full(exc):
        where = exc.filename if isinstance(exc, OSError) else None
        return DiskFull(f"disk full{f' while writing {where}' if where else ''}: the file was not written")
    if isinstance(exc, MemoryError):
        return EnvironmentProblem("out of memory")
    if isinstance(exc, OSError) and exc.errno in USER_PATH_ERRORS and exc.filename:
        return InputError(f"cannot use {exc.filename}: {exc.strerror}")
    if isinstance(exc, OSError):
        return EnvironmentProblem(f"{exc.strerror or exc}{f' ({exc.filename})' if exc.filename else ''}")
    log = _save_traceback(exc)
    return EdgepipeError(f"internal error: {type(exc).__name__}: {exc} (please report it; "
                         f"traceback: {log or 'set EDGEPIPE_DEBUG=1'})")


def report(error: EdgepipeError, as_json: bool, kind: str | None = None, cause: BaseException | None = None) -> None:
    """One line on stderr; with --json also the error object on stdout; EDGEPIPE_DEBUG=1 adds the traceback.
    A stream that cannot take it (stdout on a full disk, a terminal gone with SIGHUP) does not change the exit."""
    message = one_line(str(error))
    if as_json:
        _print_json({**error.to_dict(), "type": kind or type(error).__name__, "message": message})
    with contextlib.suppress(OSError, ValueError):
        if os.environ.get("EDGEPIPE_DEBUG") and cause is not None:
            traceback.print_exception(cause, file=sys.stderr)
        err_console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)


def warn(lines: Iterable[str]) -> None:
    """A `warning: ...` line on stderr for each (a broken or hidden plugin): shown, never fatal."""
    for line in lines:
        with contextlib.suppress(OSError, ValueError):
            err_console.print(f"[yellow]warning:[/] {escape(one_line(line))}", soft_wrap=True, highlight=False)


def one_line(text: str) -> str:
    """Collapses a message (a converter's multi-line dump, a shutil.Error list) to one bounded line."""
    line = " ".join(text.split())
    return line if len(line) <= MAX_MESSAGE else line[:MAX_MESSAGE - 1] + "…"


def _print_json(error: JsonObject) -> None:
    with contextlib.suppress(OSError, ValueError, StdoutUnwritable):   # stdout itself may be what failed
        sys.stdout.write(json.dumps({"passed": False, "error": error}) + "\n")
        sys.stdout.flush()


def _kept() -> str:
    """What an interrupted command left: output folders are swapped in whole, so each is old, new or absent."""
    notes = []
    for path, before in _watched:
        now = _stamp(path)
        if now is None:
            notes.append(f"nothing was written to {path}")
        elif now == before:
            notes.append(f"{path} still holds the previous output, unchanged")
        else:
            notes.append(f"{path} holds this run's complete output (it had finished)")
    notes.append("no partial files were left; finished stages stay cached for the next run")
    return "; ".join(notes)


def _stamp(path: Path) -> int | None:
    """Identity of what is at `path` (inode and mtime of the file or of its report): changes when it is swapped."""
    probe = path / "report.json" if path.is_dir() else path
    try:
        stat = probe.stat() if probe.exists() else path.stat()
    except OSError:
        return None
    return hash((stat.st_ino, stat.st_mtime_ns))


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[dict[str, int]]:
    """SIGINT, SIGTERM and SIGHUP stop every worker process first, then unwind as KeyboardInterrupt (main thread
    only): SIGHUP's default would end the CLI without a word and leave its work folder behind."""
    received: dict[str, int] = {}
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        received.setdefault("signum", signum)
        jobs.stop_all()
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _CheckedStdout:
    """sys.stdout while a command runs: a write or flush that fails raises StdoutUnwritable, which the guard
    tells apart from a failed file write (both are OSError with the same errno otherwise)."""

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        try:
            return self._inner.write(text)
        except OSError as exc:
            raise _unwritable(exc) from exc

    def flush(self) -> None:
        try:
            self._inner.flush()
        except OSError as exc:
            raise _unwritable(exc) from exc

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def _unwritable(exc: OSError) -> StdoutUnwritable:
    reasons = {errno.EPIPE: "the program reading it closed the pipe",
               errno.ENOSPC: "no space left on the device it is redirected to"}
    why = reasons.get(exc.errno or 0, exc.strerror or str(exc))
    return StdoutUnwritable(f"cannot write the results to stdout: {why}")


@contextlib.contextmanager
def _stdout_checked() -> Iterator[None]:
    """Routes stdout through _CheckedStdout and flushes it before the command counts as done, so a failed write
    of its results is reported here rather than as a traceback while the interpreter exits."""
    inner = sys.stdout
    if inner is None:            # no stdout at all (a detached process): nothing to check
        yield
        return
    sys.stdout = _CheckedStdout(inner)  # type: ignore[assignment]
    try:
        try:
            yield
        except DONE:
            sys.stdout.flush()
            raise
        sys.stdout.flush()
    finally:
        sys.stdout = inner


def _stdout_to_devnull() -> None:
    """Python's advice for a closed pipe: point fd 1 at devnull, so the flush at exit has nowhere to fail."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _save_traceback(exc: BaseException) -> str | None:
    from edge_pipeline.building.cache import cache_root

    try:
        path = cache_root() / "logs" / f"error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(traceback.format_exception(exc)))
        return str(path)
    except OSError:
        return None
