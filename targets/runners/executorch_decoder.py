"""A language-model `.pte` folder (targets/exporters/pte_decoder.py) in ExecuTorch's runtime: stepped one call at
a time through its KV cache, and driven by ExecuTorch's own LLM runner with the tokenizer beside it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.plugins import DecoderSession, Runner, Session
from edge_pipeline.tensors import TensorSpec
from targets.exporters.pte_decoder import GENERATION, PROGRAM, TOKENIZER


class LogitsSession(Session):
    """One call = teacher-forced logits of one window of ids (batch 1)."""

    def __init__(self, decoder: DecoderSession, length: int | None) -> None:
        self.decoder = decoder
        self.input_specs = [TensorSpec("input_ids", (1, length or 1), "int64")]
        self.output_names = ["logits"]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return [self.decoder.logits(np.asarray(inputs[0]).reshape(-1))[None]]


class ExecutorchDecoderRunner(Runner):
    name: ClassVar[str] = "executorch-decoder"
    runtime: ClassVar[str] = "ExecuTorch runtime (XNNPACK)"
    distribution: ClassVar[str] = "executorch"
    suffixes: ClassVar[dict[str, str]] = {}

    def preload(self) -> None:
        from executorch.runtime import Runtime

        Runtime.get()

    def open_decoder(self, path: Path, threads: int) -> DecoderSession:
        from targets.llm.stepping import PteDecoder

        program = path / PROGRAM
        if not program.is_file():
            raise InputError(f"{path} is not a language-model folder: it has no {PROGRAM}")
        tokenizer = path / TOKENIZER
        decoder = PteDecoder(program, tokenizer if tokenizer.is_file() else None, threads)
        declared = path / GENERATION
        if declared.is_file():
            eos = json.loads(declared.read_text()).get("eos_ids")
            if isinstance(eos, list) and sorted(eos) != sorted(decoder.eos_ids):
                raise InputError(f"{program} declares EOS ids {list(decoder.eos_ids)} but {declared} lists {eos}: "
                                 f"the runner would not stop where the model does")
        return decoder

    def open(self, path: Path, threads: int, variant: str | None = None) -> Session:
        return LogitsSession(self.open_decoder(path, threads), None)
