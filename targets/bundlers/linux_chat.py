"""The Linux chat demo for language models (`sample_apps/linux-chat`): a small REPL on the board's own LiteRT-LM
engine or ONNX Runtime GenAI, and `chat.json`, each model's first prompt with the continuation its
runtime's loop generated at build time, which `chat.py --check` must reproduce on the board."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from edge_pipeline.plugins import Bundler
from edge_pipeline.types import TEXT_GENERATION, JsonObject
from targets.bundlers.chat_models import recorded_chats

if TYPE_CHECKING:
    from edge_pipeline.report.model import Report

FILES = {"tflite": "model.litertlm", "onnx": "genai_config.json"}   # what chat.py opens in each model's folder


class LinuxChatBundler(Bundler):
    name: ClassVar[str] = "linux-chat"
    formats: ClassVar[tuple[str, ...] | None] = ("tflite", "onnx")
    tasks: ClassVar[tuple[str, ...]] = (TEXT_GENERATION,)

    def generate(self, dest: Path, report: Report, folder: Path) -> JsonObject:
        models = [{"name": c.artifact.label, "format": c.artifact.format,
                   "path": f"models/{c.artifact.path}/{FILES[c.artifact.format]}", "prompt_ids": list(c.prompt_ids),
                   "new_tokens": c.new_tokens, "expected": c.expected}
                  for c in recorded_chats(report, tuple(FILES))]
        (dest / "chat.json").write_text(json.dumps({"target": report.target, "models": models}, indent=2) + "\n")
        return {"chat_models": [m["name"] for m in models]}
