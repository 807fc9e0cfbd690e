"""Entry point of a stage worker process: `python -m edge_pipeline.worker JOB RESULT`.

Converters and runtimes run native code that can crash the interpreter; running each job in its own
process turns a segfault into one artifact's failure instead of the whole build's.
"""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

from .errors import EdgepipeError, StageFailed

STAGES = {
    "source": "edge_pipeline.stages.source_stage:run",
    "export": "edge_pipeline.stages.export_stage:run",
    "measure": "edge_pipeline.stages.measure_stage:run",
    "profile": "edge_pipeline.stages.profile_stage:run",
}


def _resolve(stage: str):
    import importlib

    module, _, func = STAGES[stage].partition(":")
    return getattr(importlib.import_module(module), func)


def main(argv: list[str]) -> int:
    job_path, result_path = Path(argv[0]), Path(argv[1])
    job = json.loads(job_path.read_text())
    try:
        result = _resolve(job["stage"])(job)
        payload = {"ok": True, "result": result}
    except EdgepipeError as exc:
        payload = {"ok": False, "error": exc.to_dict()}
    except MemoryError:
        payload = {"ok": False, "error": StageFailed("ran out of memory").to_dict()}
    except Exception as exc:  # a converter's own error: report it as this stage's failure
        traceback.print_exc()
        err = StageFailed(f"{type(exc).__name__}: {_first_line(exc)}")
        payload = {"ok": False, "error": err.to_dict()}
    result_path.write_text(json.dumps(payload, default=str))
    return 0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or repr(exc)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[0][:500] if lines else text[:500]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
