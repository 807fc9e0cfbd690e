"""A Session whose artifact runs in a real server process: each `run` is one request over loopback, and the
server is stopped with everything it started when the session closes, is collected, or the process exits."""
from __future__ import annotations

import atexit
import contextlib
import io
import os
import shutil
import sys
import tempfile
import weakref
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edge_pipeline.errors import StageFailed
from edge_pipeline.plugins import Session

from ..servers.process import ServerProcess, request

REQUEST_TIMEOUT_S = 60.0
_OPEN: "weakref.WeakSet[ServerSession]" = weakref.WeakSet()


class ServerSession(Session):
    """Subclasses set `url`, `input_specs` and `output_names`, then call `__init__` with the server to start."""

    server_name = "the server"
    serves_requests = True
    url: str
    _dirs: tuple[Path, ...] = ()

    def __init__(self, server: ServerProcess):
        self.server = server
        self.device_label = f"{self.server_name} on 127.0.0.1 of this host (client-side time, server not pinned)"
        _OPEN.add(self)
        server.start()

    def encode(self, inputs: list[np.ndarray]) -> tuple[bytes, str]:
        """The request body and its content type for one call: an `.npz` of the named inputs (exact bytes, any
        dtype; both of edgepipe's server apps also take JSON)."""
        return pack_npz({spec.name: value for spec, value in zip(self.input_specs or [], inputs, strict=True)}), \
            "application/octet-stream"

    def decode(self, body: bytes) -> list[np.ndarray]:
        """The outputs, in `output_names` order, from a 200 answer's `.npz` body."""
        try:
            with np.load(io.BytesIO(body), allow_pickle=False) as npz:
                return [npz[name] for name in self.output_names or []]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise StageFailed(f"{self.server_name} answered something that is not the model's outputs: "
                              f"{type(exc).__name__}: {exc}") from exc

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        body, content_type = self.encode(inputs)
        try:
            reply = request(self.url, body, content_type, REQUEST_TIMEOUT_S)
        except Exception as exc:      # refused, timed out, or a broken answer (http.client's own errors)
            raise StageFailed(f"{self.server_name} did not answer {self.url}: {type(exc).__name__}: {exc}") from exc
        if reply.status != 200:
            raise StageFailed(f"{self.server_name} answered {reply.status}: {reply.body[:300]!r}")
        return self.decode(reply.body)

    def resident_mb(self) -> float | None:
        return self.server.rss_mb()

    def close(self) -> None:
        """Stops the server (every process it started) and removes the session's folders."""
        server = getattr(self, "server", None)
        if server is not None:
            server.stop()
        for folder in self._dirs:
            shutil.rmtree(folder, ignore_errors=True)
        _OPEN.discard(self)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


@contextlib.contextmanager
def work_dir(prefix: str, session: ServerSession, short: bool = False) -> Iterator[Path]:
    """A folder the session owns (removed on close), and the session closed if opening it fails part way.
    `short`: directly under /tmp when the temp folder's path is long (Ray's Unix sockets sit 70 characters
    below its session folder, and a socket path may not exceed 107 bytes)."""
    default = Path(tempfile.gettempdir())
    parent = Path("/tmp") if short and len(str(default)) > 20 and Path("/tmp").is_dir() else default
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    session._dirs = (*session._dirs, folder)
    try:
        yield folder
    except BaseException:
        session.close()
        raise


def server_env(threads: int, **extra: str) -> dict[str, str]:
    """The server's environment: this Python's scripts first on PATH, its math libraries at `threads` threads
    (0: every core), no inherited Ray settings (a local cluster of its own), and `extra` (a Ray server also gets
    its own HOME: a new local cluster writes an auth token to ~/.ray, which every later `ray start` would adopt)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return env | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                  "OMP_NUM_THREADS": str(threads or os.cpu_count() or 1)} | extra


def pack_npz(arrays: dict[str, np.ndarray]) -> bytes:
    """An `.npz` of named arrays (as `np.savez` writes it, but any name, `file` included, and never a pickle)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, value in arrays.items():
            with zf.open(f"{name}.npy", "w") as entry:
                np.lib.format.write_array(entry, np.asanyarray(value), allow_pickle=False)
    return buffer.getvalue()


@atexit.register
def _stop_all() -> None:
    for session in list(_OPEN):
        with contextlib.suppress(Exception):
            session.close()
