"""Progress of a build as typed events: the API hands them to a callback, the CLI renders them."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


class Phase(str, Enum):
    START = "start"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class ProgressEvent:
    """One stage of one artifact (or the source) starting or ending. `message`: the error or the reason a stage
    was skipped."""

    stage: str                   # "source", "export tflite:int8", "validate+profile tflite:int8"
    phase: Phase
    cached: bool = False
    message: str | None = None


Progress = Callable[[ProgressEvent], None]


def no_progress(_: ProgressEvent) -> None:
    """The default callback: builds run silently."""
