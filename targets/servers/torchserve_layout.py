"""What a TorchServe artifact holds (`model-store/model.mar`) and the checks made before any TorchServe is
started on one: TorchServe runs an archive's handler, and `torch.export.load` unpickles some parts of a program
file, so only an archive with exactly edgepipe's handler and a program of plain tensors and JSON is served."""
from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

from edge_pipeline.errors import InputError

from .signature import SIGNATURE_FILE, ServedSignature

MODEL_NAME, ARCHIVE, PROGRAM = "model", "model-store/model.mar", "model.pt2"
HANDLER = Path(__file__).resolve().parent / "torchserve_handler.py"   # packed into every archive as it is
MANIFEST = "MAR-INF/MANIFEST.json"
ARCHIVE_FILES = frozenset({MANIFEST, PROGRAM, SIGNATURE_FILE, HANDLER.name})
# the parts of a torch.export program file that hold only JSON and raw tensor bytes (no pickle, no custom object)
PROGRAM_PARTS = re.compile(r"[^/]+/(data/weights/(weight_\d+|[^/]+_weights_config\.json)"
                           r"|data/constants/(tensor_\d+|[^/]+_constants_config\.json)"
                           r"|data/sample_inputs/[^/]+\.pt|models/[^/]+\.json"
                           r"|archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id)")


def read_archive(archive: Path) -> ServedSignature:
    """The archive's signature, once it is shown to hold only what edgepipe puts there; one line otherwise."""
    try:
        with zipfile.ZipFile(archive) as zf:
            names = set(zf.namelist())
            if names != ARCHIVE_FILES:
                raise InputError(f"{archive} is not an edgepipe TorchServe archive: it holds "
                                 f"{', '.join(sorted(names))} (TorchServe would run what it packs)")
            manifest = json.loads(zf.read(MANIFEST)).get("model", {})
            if zf.read(HANDLER.name) != HANDLER.read_bytes() or manifest.get("handler") != HANDLER.name \
                    or manifest.get("serializedFile") != PROGRAM:
                raise InputError(f"{archive} is not an edgepipe TorchServe archive: its handler is not edgepipe's "
                                 f"(TorchServe would run it)")
            check_program(zf.read(PROGRAM), archive)
            return ServedSignature.from_json(zf.read(SIGNATURE_FILE), f"{archive}: {SIGNATURE_FILE}")
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, AttributeError) as exc:
        raise InputError(f"{archive} is not an edgepipe TorchServe archive: {type(exc).__name__}: {exc}") from exc


def check_program(data: bytes, archive: Path) -> None:
    """Refuses a program file with any part `torch.export.load` would unpickle: custom or opaque objects, tensors
    marked `use_pickle`, sample inputs that need more than `torch.load(weights_only=True)`, anything unlisted."""
    import torch

    with zipfile.ZipFile(io.BytesIO(data)) as program:
        for name in program.namelist():
            if not PROGRAM_PARTS.fullmatch(name):
                raise InputError(f"{archive}: its program holds '{name}', which is not plain tensors or JSON")
            if name.endswith(("_weights_config.json", "_constants_config.json")):
                entries = json.loads(program.read(name)).get("config", {})
                if any(bool(entry.get("use_pickle")) for entry in entries.values()):
                    raise InputError(f"{archive}: its program pickles a tensor ({name}); it is not loaded")
            elif name.endswith(".pt"):
                try:
                    torch.load(io.BytesIO(program.read(name)), weights_only=True)
                except Exception as exc:
                    raise InputError(f"{archive}: its program's sample inputs need unpickling beyond plain tensors "
                                     f"({type(exc).__name__}); it is not loaded") from exc
