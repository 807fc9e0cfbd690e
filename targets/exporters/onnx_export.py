"""The one way edgepipe writes ONNX from each framework; the onnx exporter and the bridges share it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edge_pipeline.plugins import Model

from .savedmodel import saved_model_dir
from .torch_capture import as_unsupported


def to_onnx(model: Model, dest: Path) -> None:
    """Writes `model` as ONNX, whatever framework it is in."""
    WRITERS[model.framework](model, dest)


def copy_onnx(model: Model, dest: Path) -> None:
    dest.write_bytes(Path(model.module.path).read_bytes())


def torch_to_onnx(model: Model, dest: Path) -> None:
    """The graph keeps the source's names: inputs after `forward`'s parameters, outputs flattened like the
    reference ('output', 'output_0', ..., or a dict's keys)."""
    import torch

    from edge_pipeline.tensors import flatten_outputs

    with torch.no_grad():
        output_names = [name for name, _ in flatten_outputs(model.module(*model.example_inputs))]
    input_names = list(model.input_names) or None
    try:
        program = torch.onnx.export(model.module, model.example_inputs, dynamo=True, verbose=False,
                                    input_names=input_names, output_names=output_names)
        program.save(str(dest))
    except Exception as exc:
        raise as_unsupported("torch.onnx.export failed", exc) from exc


def tensorflow_to_onnx(model: Model, dest: Path, opset: int = 17) -> None:
    """tf2onnx's command line on a SavedModel (its Python API has no SavedModel entry point)."""
    with saved_model_dir(model) as folder:
        proc = subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(folder),
                               "--output", str(dest), "--opset", str(opset)], capture_output=True, text=True)
    if proc.returncode != 0 or not dest.is_file():
        printed = proc.stderr.splitlines()
        lines = [ln for ln in printed if "Error" in ln or "error" in ln] or printed[-1:]
        raise as_unsupported("tf2onnx conversion failed", RuntimeError(lines[-1] if lines else "no output"))


WRITERS = {"torch": torch_to_onnx, "tensorflow": tensorflow_to_onnx, "onnx": copy_onnx}
