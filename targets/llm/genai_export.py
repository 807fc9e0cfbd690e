"""A decoder to ONNX Runtime GenAI the way its own model builder does it (`onnxruntime_genai.models.builder`): an
ONNX decoder with the KV cache as `past_key_values.*` inputs and `present.*` outputs, its weights beside it,
`genai_config.json` (what GenAI's generator reads: context, EOS, the cache's names) and the tokenizer files.

int4: the builder's weight-only int4 (ONNX Runtime's MatMulNBits, blocks of 32) on every linear layer but the
output projection, which stays float: a 4-bit output projection is what broke the vendors' 4-bit default on a
real 135M model (targets/llm/pte_export.py).

The builder runs in a process of its own: it imports a top-level `quantization` package of its own, which
edgepipe's `quantization` package would shadow in this one."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from edge_pipeline.errors import Unsupported

if TYPE_CHECKING:
    from targets.llm.source_decoder import DecoderReference

FILES = ("model.onnx", "model.onnx.data", "genai_config.json", "tokenizer.json", "tokenizer_config.json")
OUTPUT_PROJECTION = "/lm_head/MatMul"
BUILDER = """
import runpy, sys
import onnxruntime_genai.models as models
sys.path.insert(0, models.__path__[0])
sys.argv = ["builder", *sys.argv[1:]]
runpy.run_module("onnxruntime_genai.models.builder", run_name="__main__")
"""


def export_genai(source: DecoderReference, dest: Path, precision: str, block_size: int | None = None) -> None:
    """`dest` (a folder) holding the builder's files for `precision` (fp32 | int4, `block_size` weights per scale)."""
    from targets.llm.hf_folder import write_hf_folder

    with tempfile.TemporaryDirectory(prefix="edgepipe-genai-") as work:
        folder = write_hf_folder(source, Path(work) / "source")
        out = Path(work) / "out"
        command = [sys.executable, "-c", BUILDER, "-i", str(folder), "-o", str(out), "-p", precision, "-e", "cpu",
                   "-c", str(Path(work) / "cache")]
        if precision == "int4":
            command += ["--extra_options", f"nodes_to_exclude={OUTPUT_PROJECTION}", f"block_size={block_size or 32}"]
        done = subprocess.run(command, capture_output=True, text=True, cwd=work)
        missing = [name for name in FILES if not (out / name).is_file()]
        if done.returncode != 0 or missing:
            lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
            said = next((line for line in reversed(lines) if "Error" in line), lines[-1] if lines else "no output")
            raise Unsupported(f"the onnxruntime-genai model builder failed: {said.strip()[:300]}")
        dest.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            shutil.copyfile(out / name, dest / name)
