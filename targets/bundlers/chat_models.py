"""What a chat bundle checks on the device: each validated language model with the prompt the build recorded and
the continuation its runtime's own loop gave for it on the build host."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge_pipeline.errors import StageFailed

if TYPE_CHECKING:
    from edge_pipeline.report.model import ArtifactReport, Report


@dataclass(frozen=True)
class RecordedChat:
    artifact: ArtifactReport
    prompt_ids: tuple[int, ...]
    new_tokens: int
    expected: str


def recorded_chats(report: Report, formats: tuple[str, ...]) -> list[RecordedChat]:
    """The validated models of `formats` whose report records a sample continuation; none is a refused bundle."""
    chats = []
    for artifact in report.artifacts:
        g = artifact.generation
        if artifact.status != "ok" or artifact.format not in formats or g is None or not g.sample_prompt_ids \
                or g.sample_continuation is None or g.sample_new_tokens is None:
            continue
        chats.append(RecordedChat(artifact, tuple(g.sample_prompt_ids), g.sample_new_tokens, g.sample_continuation))
    if not chats:
        raise StageFailed("no validated language model with a recorded continuation for the chat app")
    return chats
