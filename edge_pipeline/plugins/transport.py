"""Transports: where a runner runs, chosen by the `--device` URL's scheme (no device: the one named "local").
A transport wraps a host runner so its sessions run on the device, or measures a file with a device tool of its
own (a phone's benchmark_model), or both."""
from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from edge_pipeline.plugins.contract import Plugin
from edge_pipeline.plugins.runner import Runner
from edge_pipeline.types import JsonObject

if TYPE_CHECKING:
    from edge_pipeline.types import ProfileSettings


class Transport(Plugin):
    kind: ClassVar[str] = "transport"
    schemes: ClassVar[tuple[str, ...]]      # "ssh" for ssh://..., "adb" for adb:...
    in_process: ClassVar[bool] = False      # True: it measures in the measuring process itself

    @classmethod
    def declaration_problems(cls) -> list[str]:
        problems = [f"scheme {s!r} is not a URL scheme" for s in cls.schemes if not url_scheme_ok(s)]
        if not cls.schemes:
            problems.append("'schemes' is empty")
        if not (cls.runs_runners() or cls.measures_files()):
            problems.append("it overrides neither 'wrap_runner' nor 'measure_artifact': it cannot measure anything")
        return problems

    @classmethod
    def runs_runners(cls) -> bool:
        return cls.wrap_runner is not Transport.wrap_runner

    @classmethod
    def measures_files(cls) -> bool:
        return cls.measure_artifact is not Transport.measure_artifact

    @abstractmethod
    def parse(self, url: str | None) -> object:
        """Checks the URL; a malformed one raises a one-line ConfigError before any work."""

    def wrap_runner(self, runner: Runner, url: str | None) -> Runner:
        """`runner` whose sessions run (and are labelled) on the device at `url`."""
        raise NotImplementedError(f"the {self.name} transport cannot run a runner")

    def measure_artifact(self, artifact: Path, url: str, settings: "ProfileSettings") -> JsonObject:
        """The measure record of `artifact` timed by a device tool, without a runner (profile only)."""
        raise NotImplementedError(f"the {self.name} transport cannot measure a file by itself")


def url_scheme_ok(text: str) -> bool:
    """RFC 3986 scheme characters: a letter, then letters, digits, + - ."""
    return text[:1].isascii() and text[:1].isalpha() and all(c.isascii() and (c.isalnum() or c in "+-.") for c in text)
