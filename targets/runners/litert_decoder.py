"""A language-model LiteRT folder (targets/exporters/litert_decoder.py): the `.tflite` inside its `.litertlm`
bundle stepped over its prefill and decode signatures, and the bundle driven by LiteRT-LM's own engine."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from edge_pipeline.plugins import DecoderSession
from targets.exporters.litert_decoder import BUNDLE

from .decoder_folder import DecoderRunner, check_declared_eos, program_in


class LitertDecoderRunner(DecoderRunner):
    name: ClassVar[str] = "litert-decoder"
    runtime: ClassVar[str] = "LiteRT (XNNPACK) and the LiteRT-LM engine"
    distribution: ClassVar[str] = "litert-lm-api"

    def preload(self) -> None:
        import litert_lm  # noqa: F401
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401

    def open_decoder(self, path: Path, threads: int) -> DecoderSession:
        from targets.llm.litert_stepping import LitertDecoder

        bundle = program_in(path, BUNDLE)
        return check_declared_eos(path, bundle, LitertDecoder(bundle, threads))
