#!/usr/bin/env python3
"""Chats with the bundled language models on this board with their own runtimes, or checks them against the
continuations recorded at build time. Usage: python3 chat.py [--check] [--model NAME] [--prompt TEXT]
[--max-tokens N]. With --check, exit 0 when every model reproduces its recorded continuation."""
import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


class LitertLm:
    """A .litertlm bundle in LiteRT-LM's engine, greedy, no prompt template."""

    def __init__(self, path, threads):
        import litert_lm

        litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)
        self.path, self.threads, self.cache = path, threads, tempfile.mkdtemp()
        self.engine = self._engine(None)

    def _engine(self, max_tokens):
        import litert_lm
        from litert_lm import interfaces

        return litert_lm.Engine(str(self.path), backend=interfaces.CPU(thread_count=self.threads),
                                max_num_tokens=max_tokens, cache_dir=self.cache)

    def text_of(self, ids):
        return self.engine.detokenize([int(t) for t in ids])

    def generate(self, text, new_tokens):
        from litert_lm import interfaces

        seen = len(self.engine.tokenize(text)) + (self.engine.bos_token_id is not None)
        engine = self._engine(seen + new_tokens)
        with engine.create_session(apply_prompt_template=False,
                                   sampler_config=interfaces.SamplerConfig(top_k=1)) as session:
            session.run_prefill([text])
            return session.run_decode().texts[0]


class Genai:
    """An ONNX Runtime GenAI folder with GenAI's own generator, greedy."""

    def __init__(self, config_path, threads):
        import onnxruntime_genai as og

        config = og.Config(str(config_path.parent))
        config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}}))
        self.model = og.Model(config)
        self.tokenizer = og.Tokenizer(self.model)

    def text_of(self, ids):
        return str(self.tokenizer.decode(np.array(ids, np.int32)))

    def generate_ids(self, ids, new_tokens):
        import onnxruntime_genai as og

        params = og.GeneratorParams(self.model)
        params.set_search_options(max_length=len(ids) + new_tokens, do_sample=False)
        generator = og.Generator(self.model, params)
        generator.append_tokens(np.array([ids], np.int32))
        while not generator.is_done():
            generator.generate_next_token()
        return self.text_of(list(generator.get_sequence(0))[len(ids):])

    def generate(self, text, new_tokens):
        return self.generate_ids([int(t) for t in self.tokenizer.encode(text)], new_tokens)


def open_model(entry, threads):
    path = (HERE / entry["path"]).resolve()
    if HERE not in path.parents:
        raise SystemExit(f"chat.json: {entry['path']!r} is outside the bundle")
    return LitertLm(path, threads) if entry["format"] == "tflite" else Genai(path, threads)


def check(models, threads):
    """Each model's recorded prompt through its runtime's loop; the continuation must be the recorded one."""
    results = {}
    for entry in models:
        model = open_model(entry, threads)
        if isinstance(model, Genai):           # GenAI was validated on the prompt's ids themselves
            got = model.generate_ids(entry["prompt_ids"], entry["new_tokens"])
        else:                                  # the engine takes text, as in validation
            got = model.generate(model.text_of(entry["prompt_ids"]), entry["new_tokens"])
        results[entry["name"]] = {"matches": got == entry["expected"], "got": got[:80]}
    print(json.dumps(results))
    return all(r["matches"] for r in results.values())


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="reproduce the continuations recorded at build time")
    parser.add_argument("--model", help="the model to chat with (default: the first in chat.json)")
    parser.add_argument("--prompt", help="one prompt, answered, then exit (default: read prompts from stdin)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    models = json.loads((HERE / "chat.json").read_text())["models"]
    if args.check:
        sys.exit(0 if check(models, args.threads) else 1)
    chosen = next((m for m in models if m["name"] == args.model), None) if args.model else models[0]
    if chosen is None:
        sys.exit(f"no model {args.model!r}; the bundle has {', '.join(m['name'] for m in models)}")
    model = open_model(chosen, args.threads)
    prompts = [args.prompt] if args.prompt is not None else (line.rstrip("\n") for line in sys.stdin)
    for prompt in prompts:
        if prompt:
            print(model.generate(prompt, args.max_tokens), flush=True)


if __name__ == "__main__":
    main()
