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
    unshadow_outputs(dest)


def unshadow_outputs(path: Path) -> None:
    """torch.onnx names an output as asked even where an inner value already has that name (a BERT's
    `embedding` lookup and an encoder's pooled `embedding` output): ONNX Runtime then refuses the duplicate. The
    earlier definitions, and their uses, are renamed; the last one, the output, keeps its name."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    definitions: dict[str, int] = {}
    for node in graph.node:
        for name in node.output:
            definitions[name] = definitions.get(name, 0) + 1
    for init in graph.initializer:
        definitions[init.name] = definitions.get(init.name, 0) + 1
    if all(count == 1 for count in definitions.values()):
        return
    current: dict[str, str] = {}
    seen: dict[str, int] = {}
    for init in graph.initializer:
        if definitions[init.name] > 1:
            seen[init.name] = 1
            current[init.name] = init.name = f"{init.name}.inner{seen[init.name]}"
    for node in graph.node:
        node.input[:] = [current.get(name, name) for name in node.input]
        for index, name in enumerate(node.output):
            if definitions.get(name, 1) > 1:
                seen[name] = seen.get(name, 0) + 1
                if seen[name] < definitions[name]:
                    renamed = f"{name}.inner{seen[name]}"
                    current[name] = node.output[index] = renamed
                else:
                    current.pop(name, None)
    onnx.save(model, str(path))


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
