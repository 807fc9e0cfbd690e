"""Describes where numbers were measured and which tool versions made them, without heavy imports."""
from __future__ import annotations

import os
import platform
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version


def package_version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def versions(dists: tuple[str, ...] | list[str]) -> dict[str, str | None]:
    return {d: package_version(d) for d in sorted(set(dists))}


@lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def host_id() -> dict[str, str | int]:
    """Identity of this host for cache keys: a cached latency is only reused on the same machine."""
    return {"machine": platform.machine(), "cpu": cpu_model(), "cores": host_cores(), "node": platform.node()}


def measured_on(target: str, threads: int) -> str:
    """The label every latency carries: this host emulating a profile, never a phone."""
    where = f"host-emulated {target} profile on " if target != "host" else "this "
    return (f"{where}{platform.machine()} host "
            f"({cpu_model()}, {host_cores()} cores available), {threads} thread{'s' if threads != 1 else ''}")
