"""A language model in one GGUF file (llama.cpp's format) as a source. transformers' GGUF loader dequantizes its
weights to float32 (Q8_0, Q4_K, ... become the float weights they stand for: the source every artifact is judged
against) and rebuilds its tokenizer and chat template from the file's metadata. A GGUF file holds tensors and
typed metadata, no code and no pickle; its header is read first, so a file that is not GGUF, an architecture no
route supports or an encoder is one line, exit 2, before any weight is read."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import ClassVar

from edge_pipeline.errors import InputError
from edge_pipeline.fsutil import regular_file
from edge_pipeline.plugins import Model
from edge_pipeline.tensors import Tensors
from edge_pipeline.types import TEXT_GENERATION, JsonObject, SourceSpec
from targets.sources.transformers_source import TransformersSource, chosen_task, decoder_model

# what transformers' GGUF loader raises on metadata it cannot use: each is a refused file, said in one line
LOADER_ERRORS = (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError, NotImplementedError)


class GgufSource(TransformersSource):
    """Decoder-only language models in a `.gguf` file (task `text-generation`)."""

    name: ClassVar[str] = "gguf"
    layouts: ClassVar[tuple[str, ...]] = ()
    suffixes: ClassVar[tuple[str, ...]] = (".gguf",)

    def recognises_object(self, obj: object) -> bool:
        return False

    def load_file(self, spec: SourceSpec, path: Path) -> tuple[Model, Tensors]:
        file = regular_file(path, "GGUF model")
        architecture, tensor_types = _header(file)
        import torch
        from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

        if architecture not in GGUF_SUPPORTED_ARCHITECTURES:
            raise InputError(f"{path}: a GGUF '{architecture}' model, which transformers' GGUF loader does not read "
                             f"(it reads: {', '.join(sorted(GGUF_SUPPORTED_ARCHITECTURES))})")
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GgufConfig

        where = {"gguf_file": file.name, "local_files_only": True}
        try:
            config = AutoConfig.from_pretrained(str(file.parent), **where)
        except LOADER_ERRORS as exc:
            raise InputError(f"{path}: {str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}") \
                from None
        if chosen_task(config.to_dict(), spec, str(path)) != TEXT_GENERATION:
            what = f"task = '{spec.task}'" if spec.task else f"an encoder ('{architecture}')"
            raise InputError(f"{path}: a GGUF file is built as a text-generation model; {what} is built from a "
                             f"Hugging Face folder (config.json, *.safetensors)")
        try:
            # dense float weights: packed GGUF blocks would be neither exportable nor a float reference
            lm = AutoModelForCausalLM.from_pretrained(str(file.parent), dtype=torch.float32,
                                                      quantization_config=GgufConfig(dequantize=True), **where)
            fast = AutoTokenizer.from_pretrained(str(file.parent), **where)
        except LOADER_ERRORS as exc:
            raise InputError(f"{path} is not a loadable GGUF language model: "
                             f"{str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}") from None
        provenance: JsonObject = {"kind": "file", "path": str(path), "architecture": str(config.model_type),
                                  "weights": [file.name], "weights_dtype": f"GGUF {_types(tensor_types)} "
                                                                           f"dequantized to float32"}
        return decoder_model(lm.eval(), fast.backend_tokenizer, fast.eos_token, spec, provenance,
                             getattr(fast, "chat_template", None))


def _header(file: Path) -> tuple[str, Counter[str]]:
    """The file's architecture and how many tensors of each type it holds, from its header alone."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(file))
        architecture = bytes(reader.fields["general.architecture"].parts[-1]).decode("utf-8")
        types = Counter(tensor.tensor_type.name for tensor in reader.tensors)
    except (ValueError, KeyError, IndexError, OverflowError, UnicodeDecodeError, MemoryError) as exc:
        raise InputError(f"{file} is not a GGUF file edgepipe can read: {str(exc).splitlines()[0][:200]}") \
            from None
    return architecture, types


def _types(counts: Counter[str]) -> str:
    """'Q8_0 x14, F32 x7': what the file stores, most common first."""
    return ", ".join(f"{name} x{count}" for name, count in counts.most_common())
