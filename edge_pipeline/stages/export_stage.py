"""Export stage: rebuild the source, apply the precision's transform, write the artifact atomically."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .. import registry
from ..errors import InputError
from ..fsutil import atomic_dir, atomic_path
from ..sources import load_source
from ..types import SourceSpec
from .datafiles import load_bundle


def run(job: dict[str, Any]) -> dict[str, Any]:
    spec = SourceSpec(**job["spec"])
    model, _ = load_source(spec)
    data = load_bundle(Path(job["data"]))   # the exact arrays the source stage fingerprinted
    started = time.perf_counter()
    if job.get("bridge"):
        model = registry.create("transform", job["bridge"]).apply(model, data)
    if job.get("transform"):
        transform = registry.create("transform", job["transform"])
        if transform.needs_calibration and len(data.calibration) == 0:
            raise InputError(f"{job['label']} needs calibration data: set 'calibration' in the config "
                             f"to a function returning input batches")
        model = transform.apply(model, data)
    exporter = registry.create("exporter", job["exporter"])
    dest = Path(job["dest"])
    writer = atomic_dir if getattr(exporter, "is_directory", False) else atomic_path
    with writer(dest) as tmp:
        metadata = exporter.export(model, tmp)
    return {"metadata": metadata or {}, "seconds": round(time.perf_counter() - started, 3)}
