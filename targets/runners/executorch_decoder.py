"""A language-model `.pte` folder (targets/exporters/pte_decoder.py) in ExecuTorch's runtime: stepped one call at
a time through its KV cache, and driven by ExecuTorch's own LLM runner with the tokenizer beside it."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from edge_pipeline.plugins import DecoderSession
from targets.exporters.pte_decoder import PROGRAM
from targets.llm.decoder_folder import TOKENIZER

from .decoder_folder import DecoderRunner, check_declared_eos, program_in


class ExecutorchDecoderRunner(DecoderRunner):
    name: ClassVar[str] = "executorch-decoder"
    runtime: ClassVar[str] = "ExecuTorch runtime (XNNPACK)"
    distribution: ClassVar[str] = "executorch"

    def preload(self) -> None:
        from executorch.runtime import Runtime

        Runtime.get()

    def open_decoder(self, path: Path, threads: int) -> DecoderSession:
        from targets.llm.stepping import PteDecoder

        program = program_in(path, PROGRAM)
        tokenizer = path / TOKENIZER
        return check_declared_eos(path, program, PteDecoder(program, tokenizer if tokenizer.is_file() else None,
                                                            threads))
