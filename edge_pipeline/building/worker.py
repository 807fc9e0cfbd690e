"""Entry point of a stage worker process: `python -m edge_pipeline.building.worker JOB RESULT [JOB RESULT ...]`.

Converters and runtimes run native code that can crash the interpreter; running each job in its own
process turns a segfault into one artifact's failure instead of the whole build's. A worker must not outlive
the command that started it (a SIGKILLed CLI left exports running for 40 s): it asks the kernel to kill it when
its parent dies (Linux), and elsewhere a watchdog thread kills its process group when the parent is gone.

A worker that cannot write its result (a full disk) says why on the status pipe the parent gave it
(EDGEPIPE_STATUS_FD) before it exits; a `sys.exit` in the model's code is that job's failure, not the worker's end.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from edge_pipeline.codec import decode, encode
from edge_pipeline.errors import EdgepipeError, StageFailed
from edge_pipeline.fsutil import DiskFull, is_disk_full
from edge_pipeline.records import STAGES
from edge_pipeline.types import JsonObject, JsonValue

MAX_MESSAGE = 20_000      # characters of a library's error kept in the report (a converter may dump a graph)


def _run_stage(stage: str, job: JsonValue) -> JsonValue:
    """Decodes the job into its record, runs the stage, encodes its result; each stage's module is imported
    only by the worker that runs it."""
    if stage not in STAGES:
        raise StageFailed(f"unknown stage '{stage}' (stages: {', '.join(STAGES)})")
    job_type, _ = STAGES[stage]
    record = decode(job_type, job)
    if stage == "source":
        from edge_pipeline.building import source_stage
        return encode(source_stage.run(record))
    if stage == "export":
        from edge_pipeline.building import export_stage
        return encode(export_stage.run(record))
    if stage == "measure":
        from edge_pipeline.measure import measure_stage
        return encode(measure_stage.run(record))
    from edge_pipeline.measure import profile_stage
    return encode(profile_stage.run(record))


PR_SET_PDEATHSIG = 1
STATUS_ENV = "EDGEPIPE_STATUS_FD"   # a pipe to the parent, for the reason the worker ends without a result
FULL_BELOW_BYTES = 64 * 1024        # free space under which a disk counts as full


def die_with_parent() -> None:
    """Ends this process (and its process group) when the process that started it is gone."""
    parent = int(os.environ.get("EDGEPIPE_PARENT_PID") or 0)
    if not parent:
        return
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:        # the parent died before the request took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="edgepipe-parent-watch").start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    if os.getpgrp() == os.getpid():   # jobs.py starts workers as group leaders: the group is this job's own
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os._exit(1)


def main(argv: list[str]) -> int:
    """argv: JOB RESULT pairs, run one after another (a lane of jobs pays the imports once)."""
    die_with_parent()
    for job_path, result_path in zip(argv[0::2], argv[1::2]):
        payload: JsonObject = {}
        try:
            payload = run_one(json.loads(Path(job_path).read_text()), Path(result_path).parent)
            partial = Path(f"{result_path}.partial")
            partial.write_text(json.dumps(payload, default=str))
            os.replace(partial, result_path)    # the parent polls for it: it appears whole or not at all
        except BaseException as exc:   # noqa: BLE001  (no result can be written: say why on the status pipe)
            failed = payload.get("error") if payload.get("ok") is False else None
            _last_words(failed if isinstance(failed, dict) else _failure(exc, Path(result_path).parent).to_dict())
            raise
    return 0


def run_one(job: JsonObject, workdir: Path | None = None) -> JsonObject:
    """Runs one job; every way it can fail, the model's code calling `sys.exit` included, is its error."""
    try:
        return {"ok": True, "result": _run_stage(str(job["stage"]), job["job"])}
    except BaseException as exc:   # noqa: BLE001
        if not isinstance(exc, (EdgepipeError, MemoryError)):
            with contextlib.suppress(OSError):   # the log may be on the disk that is full
                traceback.print_exc()
        return {"ok": False, "error": _failure(exc, workdir).to_dict()}


def _failure(exc: BaseException, workdir: Path | None) -> EdgepipeError:
    """The error that stands for `exc`: a full disk (wherever in its chain) names where, an exit names its code
    and where it was called, a converter's own exception keeps its first line."""
    cause: BaseException | None = exc
    while cause is not None and not is_disk_full(cause):
        cause = cause.__cause__ or cause.__context__
    if cause is not None:
        return disk_full(getattr(cause, "filename", None) or workdir or "the cache disk")
    if workdir is not None and not isinstance(exc, EdgepipeError) and disk_is_full(workdir):
        return disk_full(workdir)   # a library that hides ENOSPC in its own error (torch.save: "unexpected pos")
    if isinstance(exc, EdgepipeError):
        return exc
    if isinstance(exc, MemoryError):
        return StageFailed("ran out of memory")
    if isinstance(exc, SystemExit):
        return StageFailed(f"the model's code (or a converter it ran) exited the worker with sys.exit({exc.code!r})"
                           f"{_called_at(exc)}; a model must raise an exception, not exit")
    return StageFailed(f"{type(exc).__name__}: {_whole_text(exc)}")


def disk_full(where: object) -> DiskFull:
    """The one message for a stage stopped by a full disk (the worker's own, or the parent's reading of its log)."""
    return DiskFull(f"disk full on {where}: the stage could not write its files; free space there or set "
                    f"EDGEPIPE_CACHE_DIR to a larger disk")


def disk_is_full(path: Path) -> bool:
    """Whether the disk holding `path` has (next to) no space left: the cause of an error that does not say."""
    try:
        return shutil.disk_usage(path).free < FULL_BELOW_BYTES
    except OSError:
        return False


def _called_at(exc: BaseException) -> str:
    """` at FILE:LINE` of the innermost frame that raised `exc`."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else ""


def _last_words(error: JsonObject) -> None:
    """Writes the reason this worker ends without a result to the parent's status pipe, if it gave one (short:
    the parent reads it only once the worker is gone, so it must fit the pipe's buffer)."""
    short = {**error, "message": str(error.get("message", ""))[:4000]}
    try:
        os.write(int(os.environ[STATUS_ENV]), json.dumps(short, default=str).encode())
    except (KeyError, ValueError, OSError):
        pass


def _whole_text(exc: BaseException) -> str:
    """The library's message as it wrote it (the terminal shows one line of it; the report and log keep it all),
    bounded: a converter can dump a whole graph into one exception."""
    text = str(exc).strip() or repr(exc)
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + " …"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
