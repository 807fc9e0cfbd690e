"""A language model as a source: a local Hugging Face folder (`config.json`, `*.safetensors`, `tokenizer.json`)
or a factory returning `(model, tokenizer)` (a transformers model and a `tokenizers.Tokenizer`). A decoder-only
causal LM is `text-generation`; an encoder (BERT-style) is `feature-extraction`, its pooled embedding the output.
Weights load from safetensors only (a pickled `.bin` is refused, never unpickled); nothing is downloaded. bfloat16
and float16 weights are loaded as float32: the XNNPACK float kernels are fp32, and the report's provenance says
so.

The evaluation text (`evaluation-text`, a file in the project) is tokenized by the model's own tokenizer into
windows, teacher-forced over the whole window (up to 8 more windows of the text after them calibrate, never
evaluate); the prompts continued greedily are the user's (`prompts`), or else
each window's first quarter."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.fsutil import regular_file
from edge_pipeline.paths import inside
from edge_pipeline.plugins import DataBundle, Model, OwnData
from edge_pipeline.tensors import Tensors
from edge_pipeline.types import FEATURE_EXTRACTION, TEXT_GENERATION, JsonObject, SourceSpec
from targets.sources.torch_source import TorchSource

PICKLED = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
MAX_WINDOWS, WINDOW, NEW_TOKENS, DEFAULT_CONTEXT = 8, 64, 32, 512
MAX_METADATA_BYTES = 4 << 20      # config.json, tokenizer_config.json: read whole, so bounded
MAX_TEXT_BYTES = 16 << 20


class TransformersSource(TorchSource):
    """Causal language models (task `text-generation`); measured like any torch model."""

    name: ClassVar[str] = "transformers"
    layouts: ClassVar[tuple[str, ...]] = ("config.json",)
    suffixes: ClassVar[tuple[str, ...]] = ()
    factory_packages: ClassVar[tuple[str, ...]] = ()

    def recognises_object(self, obj: object) -> bool:
        return (isinstance(obj, tuple) and len(obj) == 2
                and any(c.__module__.startswith("transformers.") for c in type(obj[0]).__mro__))

    def load_file(self, spec: SourceSpec, path: Path) -> tuple[Model, Tensors]:
        if not path.is_dir():
            raise InputError(f"{path}: a language model is a folder with config.json, *.safetensors and "
                             f"tokenizer.json")
        config = _json(path / "config.json")
        task = chosen_task(config, spec, str(path))
        weights = sorted(path.glob("*.safetensors"))
        pickled = sorted(p.name for p in path.iterdir() if p.suffix in PICKLED)
        if not weights:
            why = f"only pickled weights ({', '.join(pickled)}), which edgepipe does not unpickle: save them " \
                  f"with safetensors" if pickled else "no *.safetensors weights"
            raise InputError(f"{path} holds {why}")
        tokenizer_file = path / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise InputError(f"missing tokenizer file: {tokenizer_file} (a language model needs its tokenizer)")
        from tokenizers import Tokenizer
        from transformers import AutoModel, AutoModelForCausalLM

        loader = AutoModelForCausalLM if task == TEXT_GENERATION else AutoModel
        try:
            lm = loader.from_pretrained(str(path), local_files_only=True, use_safetensors=True, dtype="float32")
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"{path} is not a loadable language model: {str(exc).splitlines()[0][:300]}") from None
        tokenizer = Tokenizer.from_file(str(regular_file(tokenizer_file, "tokenizer file")))
        eos_token = _eos_token(path / "tokenizer_config.json")
        template = chat_template(path)
        dtype = config.get("torch_dtype") or config.get("dtype")
        provenance: JsonObject = {"kind": "file", "path": str(path), "architecture": str(config.get("model_type")),
                                  "weights": [w.name for w in weights],
                                  "weights_dtype": f"{dtype} loaded as float32" if dtype not in (None, "float32")
                                  else "float32"}
        if task == FEATURE_EXTRACTION:
            from targets.llm.source_encoder import encoder_model  # imports torch: not at listing time

            return encoder_model(lm, tokenizer, _evaluation_text(spec), provenance)
        return decoder_model(lm, tokenizer, eos_token, spec, provenance, template)

    def from_object(self, obj: object, spec: SourceSpec, provenance: JsonObject) -> tuple[Model, Tensors]:
        lm, tokenizer = obj   # type: ignore[misc]
        if not hasattr(tokenizer, "encode") or not hasattr(tokenizer, "to_str"):
            raise InputError(f"model factory '{spec.model}' returned a {type(tokenizer).__name__} as the tokenizer; "
                             f"return (model, tokenizers.Tokenizer)")
        task = chosen_task(lm.config.to_dict(), spec, f"model factory '{spec.model}'")
        provenance = {**provenance, "architecture": str(lm.config.model_type)}
        if task == FEATURE_EXTRACTION:      # a causal LM's base model: its last hidden states pool
            from targets.llm.source_encoder import encoder_model

            return encoder_model(getattr(lm, "base_model", lm), tokenizer, _evaluation_text(spec), provenance)
        return decoder_model(lm.float().eval(), tokenizer, None, spec, provenance)


def decoder_model(lm: Any, tokenizer: Any, eos_token: str | None, spec: SourceSpec,
                  provenance: JsonObject, template: str | None = None) -> tuple[Model, Tensors]:
    """The source Model (task text-generation) with its own evaluation windows."""
    import torch

    from targets.llm.source_decoder import DecoderReference, declared_eos_ids

    own = int(lm.config.max_position_embeddings)
    context = spec.max_context or min(own, DEFAULT_CONTEXT)
    if context > own:
        raise InputError(f"max-context {context} is longer than the model's maximum context of {own} tokens")
    window = min(WINDOW, context // 2)
    prompt, new_tokens = max(1, window // 4), min(NEW_TOKENS, context - window // 4 - 1)
    ids = tokenizer.encode(_evaluation_text(spec)).ids
    count = min(MAX_WINDOWS, len(ids) // window)
    if count < 1:
        raise InputError(f"evaluation-text '{spec.evaluation_text}' is {len(ids)} tokens long; a language model's "
                         f"evaluation needs at least one window of {window} tokens")
    windows = np.array(ids[:count * window], dtype=np.int64).reshape(count, window)
    spare = min(MAX_WINDOWS, len(ids) // window - count)     # text beyond the evaluation windows calibrates
    calibration = np.array(ids[count * window:(count + spare) * window], dtype=np.int64).reshape(spare, window)
    eos = declared_eos_ids(lm, tokenizer, eos_token)
    longer = [n for n in spec.prefill_lengths or () if n >= context]
    if longer:
        raise InputError(f"prefill-lengths {longer} do not fit the context of {context} tokens (max-context)")
    prompts = _prompt_ids(tokenizer, spec.prompts, context, new_tokens) if spec.prompts \
        else tuple(tuple(int(t) for t in row[:prompt]) for row in windows)
    module = DecoderReference(lm, tokenizer.to_str(), eos, prompts, new_tokens, context, template,
                              spec.prefill_lengths)
    data = DataBundle.single("input_ids", windows[:1], calibration, windows, None)
    example = Tensors(("input_ids",), (windows[:1],))
    model = Model("torch", module, (torch.from_numpy(windows[:1].copy()),), provenance, input_names=("input_ids",),
                  task=TEXT_GENERATION, configs=(OwnData(data),))
    return model, example


def _prompt_ids(tokenizer: Any, prompts: tuple[str, ...], context: int, new_tokens: int) -> tuple[tuple[int, ...], ...]:
    """The user's prompts as the model's tokenizer reads them; each must leave room for its continuation."""
    encoded = []
    for index, text in enumerate(prompts):
        ids = tuple(int(t) for t in tokenizer.encode(text).ids)
        if not ids:
            raise InputError(f"prompts[{index}] {text[:40]!r} is no token at all for this tokenizer")
        if len(ids) + new_tokens + 1 > context:
            raise InputError(f"prompts[{index}] is {len(ids)} tokens: with its {new_tokens}-token continuation it "
                             f"does not fit the context of {context} tokens (max-context)")
        encoded.append(ids)
    return tuple(encoded)


def chosen_task(config: dict, spec: SourceSpec, what: str) -> str:
    """The source's task: `task` where set, else the architecture's. Any decoder's hidden states pool into an
    embedding (decoder-based embedding models), but only a decoder generates text."""
    found = task_of(config, what)
    if spec.task is None or spec.task == found or spec.task == FEATURE_EXTRACTION:
        return spec.task or found
    raise InputError(f"{what}: task = '{spec.task}' needs a decoder-only language model; architecture "
                     f"'{config.get('model_type')}' is a text encoder")


def task_of(config: dict, what: str) -> str:
    """A decoder-only causal LM generates text; an encoder (BERT-style) extracts features; anything else (an
    encoder-decoder, an unknown type) has no route."""
    from transformers.models.auto import modeling_auto as auto

    kind = config.get("model_type")
    if not config.get("is_encoder_decoder"):
        if kind in auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and (kind not in auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES
                                                               or config.get("is_decoder") is True):
            return TEXT_GENERATION
        if kind in auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES or kind in auto.MODEL_MAPPING_NAMES:
            return FEATURE_EXTRACTION
    raise InputError(f"{what}: architecture '{kind}' is neither a decoder-only language model (text-generation: "
                     f"llama, qwen2, gemma, phi3, ...) nor a text encoder (feature-extraction: bert, ...)")


def _evaluation_text(spec: SourceSpec) -> str:
    if not spec.evaluation_text:
        raise InputError("a language model needs evaluation text: set evaluation-text = \"file.txt\" (a file in "
                         "the project folder)")
    path = regular_file(inside(Path(spec.base_dir), spec.evaluation_text, "evaluation-text"), "evaluation-text")
    if path.stat().st_size > MAX_TEXT_BYTES:
        raise InputError(f"evaluation-text {path} is over {MAX_TEXT_BYTES >> 20} MiB; a few thousand words suffice")
    return path.read_text(encoding="utf-8", errors="replace")


def _json(path: Path) -> dict:
    file = regular_file(path, "language model metadata")
    if file.stat().st_size > MAX_METADATA_BYTES:
        raise InputError(f"{path} is over {MAX_METADATA_BYTES >> 20} MiB: not a model's metadata")
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InputError(f"{path} must hold a JSON object")
    return value


def chat_template(folder: Path) -> str | None:
    """The folder's chat template: `chat_template.jinja` (transformers' own file for it) or tokenizer_config.json's
    `chat_template` string; None when it has neither."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        file = regular_file(jinja, "chat template")
        if file.stat().st_size > MAX_METADATA_BYTES:
            raise InputError(f"{jinja} is over {MAX_METADATA_BYTES >> 20} MiB: not a chat template")
        return file.read_text(encoding="utf-8", errors="strict")
    config = folder / "tokenizer_config.json"
    template = _json(config).get("chat_template") if config.is_file() else None
    if template is not None and not isinstance(template, str):
        raise InputError(f"{config}: 'chat_template' must be one template string (named templates are not "
                         f"supported)")
    return template


def _eos_token(path: Path) -> str | None:
    if not path.is_file():
        return None
    token = _json(path).get("eos_token")
    if isinstance(token, dict):
        token = token.get("content")
    return token if isinstance(token, str) else None
