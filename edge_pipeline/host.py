"""Describes the host: where numbers were measured, which tool versions made them, and how much memory a command
may allocate (the budget declared sizes are checked against). No heavy imports."""
from __future__ import annotations

import contextlib
import math
import os
import platform
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import astuple, dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Protocol

from edge_pipeline.errors import ConfigError, InputError


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


# ---- the memory budget and the sample caps: what a command may allocate and draw ---------------------------------

MEMORY_ENV = "EDGEPIPE_MAX_MEMORY_MB"
CALIBRATION_ENV = "EDGEPIPE_CALIBRATION_SAMPLES"
EVALUATION_ENV = "EDGEPIPE_EVALUATION_SAMPLES"
LIMIT_ENV = (MEMORY_ENV, CALIBRATION_ENV, EVALUATION_ENV)
FALLBACK_MEMORY = 8 << 30        # where no limit can be read: the budget is then 4 GiB
MIB = 1 << 20


def available_memory_bytes() -> int:
    """What this process may use: physical memory, or less where a container's cgroup or `ulimit -v` caps it."""
    sizes = []
    with contextlib.suppress(ValueError, OSError, AttributeError):
        sizes.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    with contextlib.suppress(OSError):
        cgroup = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        sizes += [int(cgroup)] if cgroup.isdigit() else []
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        sizes += [soft] if soft != resource.RLIM_INFINITY else []
    return min(sizes, default=FALLBACK_MEMORY)


def default_memory_budget() -> int:
    """Half of `available_memory_bytes()`: the rest is for the interpreter, the runtime and the model itself."""
    return available_memory_bytes() // 2


@dataclass(frozen=True)
class DataLimits:
    """The memory budget that declared sizes (npz members, model inputs, example shapes) are checked against before
    anything allocates them, and the caps on the samples drawn from a user's calibration and evaluation
    generators. A command sets them with `applied()`; worker processes inherit them through the environment
    (their job records carry only the model spec), where a user may also set them by hand. Default budget:
    `default_memory_budget()`, half the memory this process may use."""

    max_memory_mb: float | None = None          # None: default_memory_budget()
    calibration_samples: int | None = None      # None: draw until the generator ends (bounded by the budget)
    evaluation_samples: int | None = None

    @property
    def memory_bytes(self) -> int:
        return default_memory_budget() if self.max_memory_mb is None else int(self.max_memory_mb * MIB)

    @classmethod
    def from_environ(cls) -> DataLimits:
        """The limits the command set (or the user exported); a garbage value is a one-line error naming it."""
        return cls(_env_number(MEMORY_ENV, float), _env_number(CALIBRATION_ENV, int), _env_number(EVALUATION_ENV, int))

    def over(self, fallback: DataLimits) -> DataLimits:
        """These limits, each unset one taken from `fallback`."""
        return DataLimits(*(a if a is not None else b for a, b in zip(astuple(self), astuple(fallback))))


@contextlib.contextmanager
def applied(limits: DataLimits) -> Iterator[DataLimits]:
    """Sets `limits` for this command and the workers it starts; restores the environment after."""
    saved = {name: os.environ.get(name) for name in LIMIT_ENV}
    try:
        for name, value in zip(LIMIT_ENV, astuple(limits)):     # the fields, in LIMIT_ENV's order
            _set_env(name, None if value is None else str(value))
        yield limits
    finally:
        for name, old in saved.items():
            _set_env(name, old)


def _set_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _env_number(name: str, kind: type[int] | type[float]) -> int | float | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"environment variable {name}={text[:40]!r} must be a positive "
                          f"{'integer' if kind is int else 'number (MiB)'}")
    return value


class Declared(Protocol):
    """A tensor as a file declares it (a TensorSpec, an npz member's header): its size is known before its data."""

    @property
    def name(self) -> str: ...

    @property
    def shape(self) -> Sequence[int | str]: ...

    @property
    def dtype(self) -> str: ...


def declared_bytes(shape: Sequence[int | str], dtype: str) -> int:
    """Bytes of one array of `shape` and `dtype` as declared; a dynamic dimension (a name, or -1) counts as 1, the
    least it can be (inputs are generated only for fixed shapes), and a dtype numpy does not know as 1 byte."""
    import numpy as np

    try:
        itemsize = np.dtype(dtype).itemsize
    except TypeError:
        itemsize = 1
    return math.prod(d if isinstance(d, int) and d >= 0 else 1 for d in shape) * itemsize


def check_fits(what: str, specs: Iterable[Declared], budget: int | None = None, kind: str = "input") -> None:
    """Refuses tensors whose declared sizes together exceed the memory budget, before anything allocates them: a
    file of a few bytes can declare [1, 1000000000]. `budget`: bytes (default: the command's, see DataLimits)."""
    limit = DataLimits.from_environ().memory_bytes if budget is None else budget
    total = 0
    for spec in specs:
        size = declared_bytes(spec.shape, spec.dtype)
        total += size
        if total > limit:
            others = f", {size_text(total - size)} more with the {kind}s before it" if total > size else ""
            raise InputError(f"{what}: {kind} '{spec.name}' declares shape {list(spec.shape)} {spec.dtype} "
                             f"({size_text(size)}{others}), over the memory budget of {size_text(limit)}: refused "
                             f"before allocating (raise it with max-memory-mb or --max-memory)")


def size_text(size: int) -> str:
    """Bytes as people read them: 512 B, 3.7 GiB."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:,.1f} {unit}"
    return f"{size} B"
