"""The Android chat demo for language models (`sample_apps/android-chat`): a Kotlin app on ExecuTorch's own LLM
runner (`LlmModule`), and `chat.json`, each `.pte` model with the prompt recorded at build time as text, the
`seq_len` the app passes and the continuation the same runner gave on the build host, which the app must
reproduce on the phone."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from edge_pipeline.plugins import Bundler
from edge_pipeline.types import TEXT_GENERATION, JsonObject
from targets.bundlers.chat_models import recorded_chats
from targets.bundlers.mobile import ASSET_ROOTS, fill_runtime_versions
from targets.exporters.pte_decoder import PROGRAM
from targets.llm.decoder_folder import GENERATION, TOKENIZER

if TYPE_CHECKING:
    from edge_pipeline.report.model import Report

SPARE_TOKENS = 4     # seq_len counts the prompt as the runner tokenizes it: a few over, the check is a prefix


class AndroidChatBundler(Bundler):
    name: ClassVar[str] = "android-chat"
    formats: ClassVar[tuple[str, ...] | None] = ("pte",)
    tasks: ClassVar[tuple[str, ...]] = (TEXT_GENERATION,)
    asset_root: ClassVar[str] = ASSET_ROOTS["android"]

    def generate(self, dest: Path, report: Report, folder: Path) -> JsonObject:
        from tokenizers import Tokenizer

        models = []
        for chat in recorded_chats(report, self.formats or ()):
            model_dir = f"models/{chat.artifact.path}"
            tokenizer = Tokenizer.from_file(str(dest / self.asset_root / model_dir / TOKENIZER))
            prompt = tokenizer.decode(list(chat.prompt_ids))        # the text tier 3 gave ExecuTorch's runner
            context = json.loads((dest / self.asset_root / model_dir / GENERATION).read_text())["max_context"]
            models.append({"name": chat.artifact.label, "model": f"{model_dir}/{PROGRAM}",
                           "tokenizer": f"{model_dir}/{TOKENIZER}", "prompt": prompt,
                           "seq_len": min(int(context), len(tokenizer.encode(prompt).ids) + chat.new_tokens
                                          + SPARE_TOKENS),
                           "expected": chat.expected})
        (dest / self.asset_root / "chat.json").write_text(
            json.dumps({"target": report.target, "models": models}, indent=2) + "\n")
        return {"chat_models": [m["name"] for m in models],
                "runtime_versions": fill_runtime_versions(dest, report)}
