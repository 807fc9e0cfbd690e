"""An ONNX Runtime GenAI folder run by GenAI itself: teacher-forced logits of a whole window in one call (the
prefill), a greedy continuation stepped one token at a time through the cache as an app's own loop would, and
GenAI's generator loop (`generate_next_token`) as the runtime's own."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.plugins import DecoderSession, GreedyRun, LoopRun
from targets.llm.greedy import continue_greedily

CONFIG = "genai_config.json"
CHAT_TEMPLATE = "chat_template.jinja"   # written beside the model when the source has one


class GenaiDecoder(DecoderSession):
    runtime_loop = "ONNX Runtime GenAI generator"

    def __init__(self, folder: Path, threads: int) -> None:
        import onnxruntime_genai as og

        declared = _declared(folder)
        try:
            config = og.Config(str(folder))
            config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}}))
            self.model = og.Model(config)
            self.tokenizer = og.Tokenizer(self.model)
        except Exception as exc:
            raise InputError(f"{folder} is not an ONNX Runtime GenAI model folder: {exc}") from exc
        eos = declared.get("eos_token_id")
        self.eos_ids = tuple(int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None)
        self.max_context = int(declared.get("context_length") or 0)
        self.has_template = (folder / CHAT_TEMPLATE).is_file()

    def _generator(self, length: int) -> Any:
        import onnxruntime_genai as og

        params = og.GeneratorParams(self.model)
        params.set_search_options(max_length=min(length, self.max_context), do_sample=False)
        return og.Generator(self.model, params)

    def _check_room(self, tokens: int) -> None:
        if tokens > self.max_context - 1:
            raise ValueError(f"{tokens} tokens exceed the model's context of {self.max_context}")

    def logits(self, ids: np.ndarray) -> np.ndarray:
        self._check_room(len(ids))
        generator = self._generator(len(ids) + 1)
        generator.append_tokens(np.asarray(ids, np.int32)[None])
        return np.asarray(generator.get_output("logits"))[0, -len(ids):]

    def greedy(self, prompt: np.ndarray, new_tokens: int) -> GreedyRun:
        self._check_room(len(prompt))
        generator = self._generator(len(prompt) + new_tokens + 1)
        started = time.perf_counter()
        generator.append_tokens(np.asarray(prompt, np.int32)[None])
        last = np.asarray(generator.get_output("logits"))[0, -1]
        first = time.perf_counter() - started
        return GreedyRun(*continue_greedily(last, first, lambda token, at: self._feed(generator, token), len(prompt),
                                 new_tokens, self.max_context, self.eos_ids))

    @staticmethod
    def _feed(generator: Any, token: int) -> np.ndarray:
        generator.append_tokens(np.array([[token]], np.int32))
        return np.asarray(generator.get_output("logits"))[0, -1]

    def run_loop(self, prompt: np.ndarray, new_tokens: int, expected: tuple[int, ...]) -> LoopRun | None:
        """GenAI's own greedy loop on the same ids; its clock is ours around each `generate_next_token`."""
        generator = self._generator(len(prompt) + new_tokens)
        started = time.perf_counter()
        generator.append_tokens(np.asarray(prompt, np.int32)[None])
        times = []
        while not generator.is_done():
            step = time.perf_counter()
            generator.generate_next_token()
            times.append(time.perf_counter() - step)
        first_ms = (times[0] + (time.perf_counter() - started - sum(times))) * 1000 if times else None
        tokens = [int(t) for t in generator.get_sequence(0)[len(prompt):]]
        rate = (len(times) - 1) / sum(times[1:]) if len(times) > 1 and sum(times[1:]) > 0 else None
        return LoopRun(self._text(tokens), self._text(list(expected)), len(tokens), first_ms, rate)

    def render_chat(self, messages: tuple[dict[str, str], ...]) -> str | None:
        if not self.has_template:
            return None
        return str(self.tokenizer.apply_chat_template(json.dumps(list(messages)), add_generation_prompt=True))

    def _text(self, tokens: list[int]) -> str:
        return str(self.tokenizer.decode(np.array(tokens, np.int32))) if tokens else ""


def _declared(folder: Path) -> dict:
    """genai_config.json's `model` part, once every file it names is a plain name in the folder: GenAI opens what
    the config names, and an artifact is read from its own folder only."""
    from edge_pipeline.paths import plain_name
    from targets.runners.decoder_folder import json_object

    model = json_object(folder / CONFIG, "GenAI config").get("model")
    if not isinstance(model, dict) or not isinstance(model.get("decoder"), dict):
        raise InputError(f"{folder / CONFIG} has no model.decoder section")
    for part in (model, *(v for v in model.values() if isinstance(v, dict))):
        if "filename" in part:
            plain_name(part["filename"], f"{folder / CONFIG}: filename")
    return model
