"""Where `edgepipe tune` runs its candidates: this machine (each build already isolates its conversions in worker
processes) or Ray tasks, so one search can span a cluster."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from edge_pipeline.errors import MissingDependency, RunnerUnavailable
from edge_pipeline.host import LIMIT_ENV

FORWARDED_ENV = ("EDGEPIPE_CACHE_DIR", *LIMIT_ENV)   # Ray workers share the cache, the memory budget and caps
T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """What the search needs of a place to run candidates: results come back in the order of `items`."""

    @property
    def label(self) -> str: ...

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]: ...

    def close(self) -> None: ...


class LocalExecutor:
    label = "local worker processes"

    def __init__(self, parallel: int = 1):
        self.parallel = max(1, parallel)

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        with ThreadPoolExecutor(max_workers=self.parallel) as pool:   # threads wait; builds run in subprocesses
            return list(pool.map(fn, items))

    def close(self) -> None:
        pass


class RayExecutor:
    label: str

    def __init__(self, address: str | None):
        try:
            import ray
        except ImportError as exc:
            raise MissingDependency("ray", "--executor ray", "pip install 'edgepipe[ray]'") from exc
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        try:
            ray.init(address=address, runtime_env={"env_vars": env} if env else None, log_to_driver=False,
                     include_dashboard=False if address is None else None, ignore_reinit_error=True)
        except Exception as exc:
            raise RunnerUnavailable(f"cannot connect to Ray at {address or 'a new local instance'}: {exc}") from exc
        self._ray = ray
        self.label = f"Ray at {address or 'a local instance'} ({int(ray.cluster_resources().get('CPU', 0))} CPUs)"

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        task = self._ray.remote(num_cpus=1)(_call)
        results: list[R] = self._ray.get([task.remote(fn, item) for item in items])
        return results

    def close(self) -> None:
        self._ray.shutdown()


def _call(fn: Callable[[T], R], item: T) -> R:
    """Ray's task body: a module-level function, so Ray can ship it (and `fn` with it) to any worker."""
    return fn(item)


def make_executor(kind: str, address: str | None, parallel: int) -> Executor:
    if kind == "local":
        return LocalExecutor(parallel)
    if kind == "ray":
        return RayExecutor(address)
    from edge_pipeline.errors import ConfigError

    raise ConfigError(f"--executor must be 'local' or 'ray', got '{kind}'")
