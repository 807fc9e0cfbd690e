"""Entry point of a stage worker process: `python -m edge_pipeline.building.worker JOB RESULT [JOB RESULT ...]`.

Converters and runtimes run native code that can crash the interpreter; running each job in its own
process turns a segfault into one artifact's failure instead of the whole build's. A worker must not outlive
the command that started it (a SIGKILLed CLI left exports running for 40 s): it asks the kernel to kill it when
its parent dies (Linux), and elsewhere a watchdog thread kills its process group when the parent is gone.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from edge_pipeline.codec import decode, encode
from edge_pipeline.errors import EdgepipeError, StageFailed
from edge_pipeline.records import STAGES
from edge_pipeline.types import JsonObject, JsonValue


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
        payload = run_one(json.loads(Path(job_path).read_text()))
        partial = Path(f"{result_path}.partial")
        partial.write_text(json.dumps(payload, default=str))
        os.replace(partial, result_path)    # the parent polls for it: it appears whole or not at all
    return 0


def run_one(job: JsonObject) -> JsonObject:
    try:
        return {"ok": True, "result": _run_stage(str(job["stage"]), job["job"])}
    except EdgepipeError as exc:
        return {"ok": False, "error": exc.to_dict()}
    except MemoryError:
        return {"ok": False, "error": StageFailed("ran out of memory").to_dict()}
    except Exception as exc:  # a converter's own error: report it as this stage's failure
        traceback.print_exc()
        return {"ok": False, "error": StageFailed(f"{type(exc).__name__}: {_first_line(exc)}").to_dict()}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or repr(exc)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[0][:500] if lines else text[:500]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
