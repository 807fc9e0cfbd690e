"""A bridge's work folder: the bridged model reads its SavedModel or ONNX file until the export is done, so the
folder outlives the call that made it. It is removed when the process exits; in a stage worker the build also
removes the worker's whole temporary folder when the worker ends, however it ended (building/jobs.py)."""
from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path


def bridge_work_folder(prefix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
