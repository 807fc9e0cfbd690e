"""The decoder inside a `.litertlm` bundle run as an app's hand-written loop over its signatures: `prefill_<N>`
fills the KV cache with the prompt, `decode` takes one token at its position, the cache goes in and out of every
call. Teacher-forced logits step `decode` position by position; a greedy continuation prefills, then decodes. The
runtime's own loop is LiteRT-LM's engine on the same bundle (`run_loop`)."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_pipeline.errors import InputError
from edge_pipeline.plugins import DecoderSession, GreedyRun, LoopRun
from targets.llm.greedy import continue_greedily
from targets.llm.litertlm_file import decoder_tflite

MASKED = np.finfo(np.float32).min     # added to the scores of positions a token may not attend to
PREFILL, DECODE, CACHE = "prefill_", "decode", "kv_cache"


class LitertDecoder(DecoderSession):
    """One interpreter over the bundle's `.tflite` (XNNPACK, `threads`), and LiteRT-LM's engine opened on the
    bundle for its stop tokens and its own generation loop."""

    runtime_loop = "LiteRT-LM engine"

    def __init__(self, bundle: Path, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.bundle, self.threads = bundle, threads
        program = decoder_tflite(bundle)
        try:
            interpreter = Interpreter(model_content=program, num_threads=threads)
            signatures = interpreter.get_signature_list()
        except Exception as exc:
            raise InputError(f"{bundle}: its .tflite is not loadable by LiteRT: {exc}") from exc
        lengths = sorted(int(name[len(PREFILL):]) for name in signatures if name.startswith(PREFILL)
                         and name[len(PREFILL):].isdigit())
        if DECODE not in signatures or not lengths:
            raise InputError(f"{bundle}: its .tflite has no prefill_<N> and decode signatures "
                             f"(signatures: {', '.join(sorted(signatures))})")
        self.decode = interpreter.get_signature_runner(DECODE)
        self.prefills = {n: interpreter.get_signature_runner(f"{PREFILL}{n}") for n in lengths}
        inputs = self.decode.get_input_details()
        missing = [n for n in ("tokens", "input_pos", "mask") if n not in inputs]
        missing += ["logits (output)"] if "logits" not in self.decode.get_output_details() else []
        if missing:
            raise InputError(f"{bundle}: its decode signature lacks {', '.join(missing)}: not a LiteRT-LM decoder")
        self.cache_specs = {k: (tuple(v["shape"]), v["dtype"]) for k, v in inputs.items() if k.startswith(CACHE)}
        self.max_context = int(inputs["mask"]["shape"][-1])
        self.kernels = tempfile.TemporaryDirectory(prefix="edgepipe-litert-lm-")   # the engine's XNNPACK cache,
        self.engines: dict[int, Any] = {}                                           # never beside the artifact
        self.engine = self._engine(self.max_context)
        self.eos_ids = tuple(sorted({int(s[0]) for s in self.engine.eos_token_ids if len(s) == 1}))
        self.has_template = (bundle.parent / "chat_template.jinja").is_file()

    def _empty_cache(self) -> dict[str, np.ndarray]:
        return {name: np.zeros(shape, dtype) for name, (shape, dtype) in self.cache_specs.items()}

    def _mask(self, positions: np.ndarray) -> np.ndarray:
        mask = np.full((1, 1, len(positions), self.max_context), MASKED, np.float32)
        for row, position in enumerate(positions):
            mask[0, 0, row, :position + 1] = 0.0
        return mask

    def _decode(self, token: int, position: int, cache: dict[str, np.ndarray]) -> np.ndarray:
        out = self.decode(tokens=np.array([[token]], np.int32), input_pos=np.array([position], np.int32),
                          mask=self._mask(np.array([position])), **cache)
        cache.update({name: out[name] for name in cache})
        return out["logits"][0, -1]

    def _prefill(self, ids: np.ndarray, cache: dict[str, np.ndarray]) -> None:
        """`ids` into the cache from position 0, in chunks of the prefill signatures (the last one padded: its
        padded rows write cache positions that decode overwrites before anything reads them)."""
        start = 0
        while start < len(ids):
            left = len(ids) - start
            length = next((n for n in self.prefills if n >= left), max(self.prefills))
            chunk = np.zeros((1, length), np.int32)
            taken = ids[start:start + length]
            chunk[0, :len(taken)] = taken
            positions = np.arange(start, start + length, dtype=np.int32)
            out = self.prefills[length](tokens=chunk, input_pos=positions, mask=self._mask(positions), **cache)
            cache.update({name: out[name] for name in cache})
            start += length

    def _check_room(self, tokens: int) -> None:
        if tokens > self.max_context - 1:
            raise ValueError(f"{tokens} tokens exceed the bundle's context of {self.max_context}")

    def logits(self, ids: np.ndarray) -> np.ndarray:
        self._check_room(len(ids))
        cache = self._empty_cache()
        return np.stack([self._decode(int(token), position, cache) for position, token in enumerate(ids)])

    def greedy(self, prompt: np.ndarray, new_tokens: int) -> GreedyRun:
        self._check_room(len(prompt))
        cache = self._empty_cache()
        started = time.perf_counter()
        self._prefill(np.asarray(prompt[:-1]), cache)
        last = self._decode(int(prompt[-1]), len(prompt) - 1, cache)
        first = time.perf_counter() - started
        return GreedyRun(*continue_greedily(last, first, lambda token, at: self._decode(token, at, cache), len(prompt),
                                 new_tokens, self.max_context, self.eos_ids))

    def run_loop(self, prompt: np.ndarray, new_tokens: int, expected: tuple[int, ...]) -> LoopRun | None:
        """The engine takes text: the prompt ids are detokenized, and where its tokenizer reads the text back as
        other ids (a window cut mid-word), stepping is compared from the ids the engine will see."""
        from litert_lm import interfaces

        engine = self.engine
        text = engine.detokenize([int(t) for t in prompt])
        seen = ([engine.bos_token_id] if engine.bos_token_id is not None else []) + list(engine.tokenize(text))
        if expected and seen != [int(t) for t in prompt]:
            expected = self.greedy(np.array(seen), len(expected)).tokens
        shown = expected[:-1] if expected and expected[-1] in self.eos_ids else expected
        limit = min(self.max_context, len(seen) + new_tokens)
        greedy = interfaces.SamplerConfig(top_k=1)
        with self._engine(limit).create_session(apply_prompt_template=False, sampler_config=greedy) as session:
            session.run_prefill([text])
            generated = session.run_decode().texts[0]
            info = session.get_benchmark_info()
        return LoopRun(generated, engine.detokenize(list(shown)), int(info.last_decode_token_count),
                       info.time_to_first_token_in_second * 1000, info.last_decode_tokens_per_second)

    def render_chat(self, messages: tuple[dict[str, str], ...]) -> str | None:
        """A conversation of the engine's renders all but the last turn as history; the last, with the generation
        prompt, is what `render_message_to_string` gives."""
        if not self.has_template:
            return None
        *history, last = messages
        conversation = self.engine.create_conversation(messages=list(history) or None)
        return str(conversation.render_message_to_string(dict(last)))

    def _engine(self, max_tokens: int) -> Any:
        """LiteRT-LM's engine on the bundle, on the CPU with the session's threads, at most `max_tokens` in all;
        one per limit, kept, as an app keeps its engine between conversations."""
        import litert_lm
        from litert_lm import interfaces

        if max_tokens in self.engines:
            return self.engines[max_tokens]
        litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)
        try:
            self.engines[max_tokens] = litert_lm.Engine(
                str(self.bundle), backend=interfaces.CPU(thread_count=self.threads), max_num_tokens=max_tokens,
                cache_dir=self.kernels.name, enable_benchmark=True)
        except Exception as exc:
            raise InputError(f"{self.bundle}: LiteRT-LM's engine cannot open it: {exc}") from exc
        return self.engines[max_tokens]
