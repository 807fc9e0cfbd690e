"""What every language-model runner shares: the folder an exporter writes (targets/llm/decoder_folder.py) read
back, and a decoder seen as a plain one-call session (teacher-forced logits of one window)."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.plugins import DecoderSession, Runner, Session
from edge_pipeline.tensors import TensorSpec
from targets.llm.decoder_folder import GENERATION


class LogitsSession(Session):
    """One call = teacher-forced logits of one window of ids (batch 1)."""

    def __init__(self, decoder: DecoderSession, length: int | None) -> None:
        self.decoder = decoder
        self.input_specs = [TensorSpec("input_ids", (1, length or 1), "int64")]
        self.output_names = ["logits"]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return [self.decoder.logits(np.asarray(inputs[0]).reshape(-1))[None]]


class DecoderRunner(Runner):
    """A runner of language-model folders: `open_decoder` is its contract; `open` sees the decoder as one call of
    teacher-forced logits, and no file suffix names such a folder."""

    suffixes: ClassVar[dict[str, str]] = {}

    def open(self, path: Path, threads: int, variant: str | None = None) -> Session:
        return LogitsSession(self.open_decoder(path, threads), None)


def program_in(folder: Path, name: str) -> Path:
    program = folder / name
    if not program.is_file():
        raise InputError(f"{folder} is not a language-model folder: it has no {name}")
    return program


def json_object(path: Path, what: str) -> dict:
    """A JSON object file of the artifact, bounded in size; anything else is refused by name."""
    from edge_pipeline.report.baseline import read_json_file

    loaded = read_json_file(path, what)
    if not isinstance(loaded, dict):
        raise InputError(f"{what} {path} is not a JSON object")
    return loaded


def check_declared_eos(folder: Path, program: Path, decoder: DecoderSession) -> DecoderSession:
    """`decoder`, once the EOS ids its program stops at are those the folder's generation.json lists."""
    declared = folder / GENERATION
    if declared.is_file():
        eos = json_object(declared, "generation file").get("eos_ids")
        if isinstance(eos, list) and sorted(map(str, eos)) != sorted(map(str, decoder.eos_ids)):
            raise InputError(f"{program} declares EOS ids {list(decoder.eos_ids)} but {declared} lists {eos}: "
                             f"the runner would not stop where the model does")
    return decoder
