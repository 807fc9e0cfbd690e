"""A language-model ONNX Runtime GenAI folder (targets/exporters/genai_decoder.py) in GenAI's own runtime."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from edge_pipeline.plugins import DecoderSession
from targets.llm.genai_stepping import CONFIG

from .decoder_folder import DecoderRunner, check_declared_eos, program_in


class GenaiDecoderRunner(DecoderRunner):
    name: ClassVar[str] = "ort-genai"
    runtime: ClassVar[str] = "ONNX Runtime GenAI (CPU)"
    distribution: ClassVar[str] = "onnxruntime-genai"

    def preload(self) -> None:
        import onnxruntime_genai  # noqa: F401

    def open_decoder(self, path: Path, threads: int) -> DecoderSession:
        from targets.llm.genai_stepping import GenaiDecoder

        config = program_in(path, CONFIG)
        program_in(path, "model.onnx")
        return check_declared_eos(path, config, GenaiDecoder(path, threads))
