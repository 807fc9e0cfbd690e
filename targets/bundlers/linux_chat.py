"""The Linux chat demo for language models (`sample_apps/linux-chat`): a small REPL on the board's own LiteRT-LM
engine or ONNX Runtime GenAI, and `chat.json`, each model's first prompt with the continuation its
runtime's loop generated at build time, which `chat.py --check` must reproduce on the board."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from edge_pipeline.errors import StageFailed
from edge_pipeline.plugins import Bundler
from edge_pipeline.types import TEXT_GENERATION, JsonObject

if TYPE_CHECKING:
    from edge_pipeline.report.model import Report

FILES = {"tflite": "model.litertlm", "onnx": "genai_config.json"}   # what chat.py opens in each model's folder


class LinuxChatBundler(Bundler):
    name: ClassVar[str] = "linux-chat"
    formats: ClassVar[tuple[str, ...] | None] = ("tflite", "onnx")
    tasks: ClassVar[tuple[str, ...]] = (TEXT_GENERATION,)

    def generate(self, dest: Path, report: Report, folder: Path) -> JsonObject:
        models = []
        for artifact in report.artifacts:
            g = artifact.generation
            if artifact.status != "ok" or artifact.format not in FILES or g is None or not g.sample_prompt_ids \
                    or g.sample_continuation is None or g.sample_new_tokens is None:
                continue
            models.append({"name": artifact.label, "format": artifact.format,
                           "path": f"models/{artifact.path}/{FILES[artifact.format]}",
                           "prompt_ids": list(g.sample_prompt_ids), "new_tokens": g.sample_new_tokens,
                           "expected": g.sample_continuation})
        if not models:
            raise StageFailed("no validated language model with a recorded continuation for the chat app")
        (dest / "chat.json").write_text(json.dumps({"target": report.target, "models": models}, indent=2) + "\n")
        return {"chat_models": [m["name"] for m in models]}
