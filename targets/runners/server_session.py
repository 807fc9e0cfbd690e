"""A Session whose artifact runs in a real server process: each `run` is one request over loopback, and the
server is stopped with everything it started when the session closes, is collected, or the process exits."""
from __future__ import annotations

import atexit
import io
import weakref

import numpy as np

from edge_pipeline.errors import StageFailed
from edge_pipeline.plugins import Session

from ..servers.process import ServerProcess, request

REQUEST_TIMEOUT_S = 60.0
_OPEN: "weakref.WeakSet[ServerSession]" = weakref.WeakSet()


class ServerSession(Session):
    server_name = "the server"
    serves_requests = True
    url: str

    def __init__(self, server: ServerProcess):
        self.server = server
        _OPEN.add(self)
        try:
            server.start()
        except BaseException:
            self.cleanup()
            raise

    def encode(self, inputs: list[np.ndarray]) -> tuple[bytes, str]:
        """The request body and its content type for one call: an `.npz` of the named inputs (exact bytes, any
        dtype; both of edgepipe's server apps also take JSON)."""
        buffer = io.BytesIO()
        np.savez(buffer, **{spec.name: value for spec, value in zip(self.input_specs or [], inputs, strict=True)})
        return buffer.getvalue(), "application/octet-stream"

    def decode(self, body: bytes) -> list[np.ndarray]:
        """The outputs, in `output_names` order, from a 200 answer's `.npz` body."""
        try:
            with np.load(io.BytesIO(body), allow_pickle=False) as npz:
                return [npz[name] for name in self.output_names or []]
        except (OSError, ValueError, KeyError) as exc:
            raise StageFailed(f"{self.server_name} answered something that is not the model's outputs: {exc}") from exc

    def cleanup(self) -> None:
        """Removes the session's own files once the server is stopped."""

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        body, content_type = self.encode(inputs)
        try:
            reply = request(self.url, body, content_type, REQUEST_TIMEOUT_S)
        except OSError as exc:
            raise StageFailed(f"{self.server_name} did not answer {self.url}: {exc}") from exc
        if reply.status != 200:
            raise StageFailed(f"{self.server_name} answered {reply.status}: {reply.body[:300]!r}")
        return self.decode(reply.body)

    def resident_mb(self) -> float | None:
        return self.server.rss_mb()

    def close(self) -> None:
        self.server.stop()
        self.cleanup()
        _OPEN.discard(self)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


@atexit.register
def _stop_all() -> None:
    for session in list(_OPEN):
        session.close()
