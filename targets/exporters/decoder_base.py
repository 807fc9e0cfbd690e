"""What every language-model exporter declares alike: a folder artifact from a PyTorch (transformers) decoder of
the `text-generation` task, its source taken as the language-model reference the source stage built."""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from edge_pipeline.plugins import Exporter, Model
from edge_pipeline.types import TEXT_GENERATION
from targets.llm.decoder_folder import decoder_source

if TYPE_CHECKING:
    from targets.llm.source_decoder import DecoderReference


class DecoderExporter(Exporter):
    is_directory: ClassVar[bool] = True
    frameworks: ClassVar[tuple[str, ...]] = ("torch",)
    tasks: ClassVar[tuple[str, ...]] = (TEXT_GENERATION,)

    def source(self, model: Model) -> DecoderReference:
        return decoder_source(model, self.name)
