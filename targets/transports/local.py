"""The default transport: measure on this host, in the measuring process. A transport that also measures here
but names the place differently (a bench label, a container) subclasses it and overrides `device_label`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from edge_pipeline.errors import ConfigError
from edge_pipeline.plugins import TransportBase


class LocalTransport(TransportBase):
    """No `--device`: the artifact's runner as it is, its latency labelled with this host."""

    name: ClassVar[str] = "local"
    schemes: ClassVar[tuple[str, ...]] = ("local",)
    in_process: ClassVar[bool] = True

    def parse(self, url: str | None) -> str | None:
        if url is not None and url.rstrip(":/") not in self.schemes:
            raise ConfigError(f"--device '{url}': the {self.name} transport takes no address (use '{self.schemes[0]}')")
        return url

    def device_label(self, url: str | None) -> str | None:
        """What `measured_on` names instead of the host; None: the host and its pinned CPUs."""
        return None

    def wrap_runner(self, runner: Any, url: str | None) -> Any:
        label = self.device_label(url) if url is not None else None
        return runner if label is None else LabelledRunner(runner, label)


class LabelledRunner:
    """A host runner whose sessions report `device_label`: the same code, measured and labelled as that place."""

    def __init__(self, runner: Any, label: str):
        self._runner, self._label = runner, label

    def __getattr__(self, member: str) -> Any:
        return getattr(self._runner, member)

    def open(self, path: Path, *args: Any, **kwargs: Any) -> Any:
        session = self._runner.open(path, *args, **kwargs)
        try:
            session.device_label = self._label
        except AttributeError:   # a session with __slots__ or read-only members: label a thin wrapper instead
            session = _Labelled(session, self._label)
        return session


class _Labelled:
    def __init__(self, session: Any, label: str):
        self._session, self.device_label = session, label

    def __getattr__(self, member: str) -> Any:
        return getattr(self._session, member)
