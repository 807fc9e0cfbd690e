"""A TorchServe model archive: the source's `torch.export` program (batch dimension dynamic where the model
allows it), edgepipe's handler (named tensors in and out, JSON or `.npz`) and the signature it reads, packed by
`torch-model-archiver` into `model-store/model.mar`.

The archiver stamps the archive with the time (file dates and MANIFEST.json's `createdOn`); both are fixed
afterwards, so the same model gives the same bytes."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import ClassVar

from edge_pipeline.errors import MissingDependency, StageFailed
from edge_pipeline.plugins import Exporter, Model
from edge_pipeline.tensors import TensorSpec
from edge_pipeline.types import JsonObject

from ..servers.signature import SIGNATURE_FILE, ServedSignature
from ..servers.torchserve_layout import ARCHIVE, HANDLER, MANIFEST, MODEL_NAME, PROGRAM
from .torch_capture import capture

FIXED_TIME = (1980, 1, 1, 0, 0, 0)


class TorchServeExporter(Exporter):
    name: ClassVar[str] = "torchserve"
    format: ClassVar[str] = "torchserve"
    suffix: ClassVar[str] = "-torchserve"
    is_directory: ClassVar[bool] = True
    frameworks: ClassVar[tuple[str, ...]] = ("torch",)
    precisions: ClassVar[dict[str, str | None]] = {"fp32": None}
    runner: ClassVar[str | None] = "torchserve"
    distributions: ClassVar[tuple[str, ...]] = ("torch", "torch-model-archiver")

    def export(self, model: Model, dest: Path) -> JsonObject:
        import torch

        program, batch = _program(model)
        with tempfile.TemporaryDirectory(prefix="edgepipe-torchserve-") as tmp:
            work = Path(tmp)
            torch.export.save(program, str(work / PROGRAM))
            count = len(program.graph_signature.user_outputs)
            outputs = tuple(model.output_names) or tuple(f"output_{i}" for i in range(count))
            inputs = tuple(TensorSpec(name, tuple(t.shape), str(t.dtype).removeprefix("torch."))
                           for name, t in zip(model.input_names, model.example_inputs))
            (work / SIGNATURE_FILE).write_text(ServedSignature(inputs, outputs, batch).to_json())
            (dest / "model-store").mkdir(parents=True)
            _archive(work, dest / "model-store")
        _fix_times(dest / ARCHIVE)
        return {"archiver": "torch-model-archiver", "model_name": MODEL_NAME, "archive": ARCHIVE,
                "handler": "edgepipe (named tensors, JSON or .npz)", "batch": batch, "outputs": list(outputs)}


def _program(model: Model) -> tuple[object, str]:
    """The program with a dynamic batch dimension when torch.export can make one, else as the example."""
    import torch

    batch = torch.export.Dim("batch", min=1, max=1024)
    shapes = tuple({0: batch} if t.dim() > 0 else None for t in model.example_inputs)
    try:
        return torch.export.export(model.module, model.example_inputs, dynamic_shapes=shapes), "dynamic"
    except Exception:      # a model that fixes its batch (a reshape to the example's size): exported as it is
        return capture(model), "static"


def _archive(work: Path, store: Path) -> None:
    if shutil.which("torch-model-archiver", path=str(Path(sys.executable).parent)) is None:
        raise MissingDependency("torch-model-archiver", "the torchserve exporter",
                                "pip install torch-model-archiver==0.12.0")
    command = [str(Path(sys.executable).parent / "torch-model-archiver"), "--model-name", MODEL_NAME,
               "--version", "1.0", "--serialized-file", str(work / PROGRAM),
               "--handler", str(HANDLER), "--extra-files", str(work / SIGNATURE_FILE),
               "--export-path", str(store)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise StageFailed(f"torch-model-archiver failed: {(proc.stderr or proc.stdout).strip()[-300:]}")


def _fix_times(archive: Path) -> None:
    """The archive rewritten with fixed entry dates, sorted entries and a fixed `createdOn`."""
    with zipfile.ZipFile(archive) as zf:
        entries = {info.filename: zf.read(info) for info in zf.infolist() if not info.is_dir()}
    manifest = MANIFEST
    if manifest in entries:
        data = json.loads(entries[manifest])
        data["createdOn"] = "01/01/1980 00:00:00"
        entries[manifest] = json.dumps(data, indent=4).encode()
    tmp = archive.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, entries[name])
    tmp.replace(archive)
