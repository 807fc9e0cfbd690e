"""Runs a TorchServe archive in a real TorchServe (Java frontend, Python worker) started on 127.0.0.1 for the
session, and calls its inference API: every figure is a round trip through the server on loopback."""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import ClassVar

import numpy as np

from edge_pipeline.errors import InputError, MissingDependency
from edge_pipeline.plugins import Runner
from edge_pipeline.tensors import TensorSpec

from ..servers.process import ServerProcess, free_port, request
from .server_session import ServerSession

HANDLER = Path(__file__).resolve().parents[1] / "servers" / "torchserve_handler.py"

MODEL_NAME, ARCHIVE = "model", "model-store/model.mar"


class TorchServeRunner(Runner):
    name: ClassVar[str] = "torchserve"
    runtime: ClassVar[str] = "TorchServe"
    distribution: ClassVar[str] = "torchserve"
    suffixes: ClassVar[dict[str, str]] = {ARCHIVE: "torchserve"}
    in_process: ClassVar[bool] = False

    def open(self, path: Path, threads: int, variant: str | None = None) -> TorchServeSession:
        archive = path / ARCHIVE
        if not archive.is_file():
            raise InputError(f"{path} is not a TorchServe artifact: {ARCHIVE} is missing")
        launcher = Path(sys.executable).parent / "torchserve"
        if not launcher.is_file():
            raise MissingDependency("torchserve", "the torchserve runner", "pip install torchserve==0.12.0")
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise MissingDependency("java", "TorchServe's frontend", "apt-get install openjdk-17-jre-headless")
        return TorchServeSession(archive, threads)


class TorchServeSession(ServerSession):
    server_name = "TorchServe"
    runtime_label = "TorchServe, one worker, each call an HTTP request on 127.0.0.1"

    def __init__(self, archive: Path, threads: int):
        self._work = Path(tempfile.mkdtemp(prefix="edgepipe-torchserve-"))
        store, tmp = self._work / "store", self._work / "tmp"
        store.mkdir()
        tmp.mkdir()
        shutil.copyfile(archive, store / archive.name)
        inference, management, metrics = free_port(), free_port(), free_port()
        (self._work / "config.properties").write_text(
            f"inference_address=http://127.0.0.1:{inference}\nmanagement_address=http://127.0.0.1:{management}\n"
            f"metrics_address=http://127.0.0.1:{metrics}\ndefault_workers_per_model=1\n"
            f"number_of_netty_threads={max(threads, 1)}\n")
        self.url = f"http://127.0.0.1:{inference}/predictions/{MODEL_NAME}"
        status = f"http://127.0.0.1:{management}/models/{MODEL_NAME}"
        env = dict(os.environ, TMPDIR=str(tmp), OMP_NUM_THREADS=str(threads or os.cpu_count() or 1),
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        server = ServerProcess("TorchServe", [str(Path(sys.executable).parent / "torchserve"), "--start",
                                              "--foreground", "--ncs", "--disable-token-auth",
                                              "--model-store", str(store), "--models", f"{MODEL_NAME}={archive.name}",
                                              "--ts-config", str(self._work / "config.properties")],
                               self._work / "torchserve.log", lambda: _worker_ready(status), env=env, cwd=self._work)
        signature = archive_signature(archive)
        self.input_specs = [TensorSpec(i["name"], tuple(["batch", *i["shape"][1:]]), i["dtype"])
                            for i in signature["inputs"]]
        self.output_names = list(signature["outputs"])
        super().__init__(server)

    def cleanup(self) -> None:
        shutil.rmtree(self._work, ignore_errors=True)


def _worker_ready(status_url: str) -> bool:
    reply = request(status_url, timeout_s=2)
    if reply.status != 200:
        return False
    workers = json.loads(reply.body)[0].get("workers", [])
    return bool(workers) and all(w.get("status") == "READY" for w in workers)


def archive_signature(archive: Path) -> dict:
    """The signature.json packed in a .mar (what the handler reads), after checking the archive holds exactly
    edgepipe's handler, named as its handler, and nothing else that runs: TorchServe executes an archive's handler
    code, so an archive from elsewhere is refused rather than run."""
    import zipfile

    try:
        with zipfile.ZipFile(archive) as zf:
            names = set(zf.namelist())
            manifest = json.loads(zf.read("MAR-INF/MANIFEST.json"))
            handler = zf.read(HANDLER.name) if HANDLER.name in names else b""
            signature = dict(json.loads(zf.read("signature.json")))
    except (KeyError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise InputError(f"{archive} is not an edgepipe TorchServe archive: {exc}") from exc
    expected = {"MAR-INF/MANIFEST.json", "model.pt2", "signature.json", HANDLER.name}
    if names != expected or handler != HANDLER.read_bytes() or manifest.get("model", {}).get("handler") != HANDLER.name:
        raise InputError(f"{archive} is not an edgepipe TorchServe archive (its files or handler differ from "
                         f"edgepipe's: TorchServe would run that code, so it is not started)")
    return signature
