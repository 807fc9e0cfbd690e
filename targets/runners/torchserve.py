"""Runs a TorchServe archive in a real TorchServe (Java frontend, one Python worker) started on 127.0.0.1 for
the session, and calls its inference API: every figure is a round trip through the server on loopback. The
archive copy that is served is the one checked (targets.servers.torchserve_layout)."""
from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from edge_pipeline.errors import InputError, MissingDependency
from edge_pipeline.plugins import Runner

from ..servers.process import ServerProcess, free_ports, request
from ..servers.torchserve_layout import ARCHIVE, MODEL_NAME, read_archive
from .server_session import ServerSession, server_env, work_dir


class TorchServeRunner(Runner):
    name: ClassVar[str] = "torchserve"
    runtime: ClassVar[str] = "TorchServe"
    distribution: ClassVar[str] = "torchserve"
    suffixes: ClassVar[dict[str, str]] = {ARCHIVE: "torchserve"}
    in_process: ClassVar[bool] = False

    def open(self, path: Path, threads: int, variant: str | None = None) -> TorchServeSession:
        if not (path / ARCHIVE).is_file():
            raise InputError(f"{path} is not a TorchServe artifact: {ARCHIVE} is missing")
        if not (Path(sys.executable).parent / "torchserve").is_file():
            raise MissingDependency("torchserve", "the torchserve runner", "pip install torchserve==0.12.0")
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise MissingDependency("java", "TorchServe's frontend", "apt-get install openjdk-17-jre-headless")
        return TorchServeSession(path / ARCHIVE, threads)


class TorchServeSession(ServerSession):
    server_name = "TorchServe"
    runtime_label = "TorchServe, one worker, each call an HTTP request on 127.0.0.1"

    def __init__(self, archive: Path, threads: int):
        with work_dir("edgepipe-torchserve-", self) as work:
            store, tmp = work / "store", work / "tmp"
            store.mkdir()
            tmp.mkdir()
            served = store / archive.name
            shutil.copyfile(archive, served)
            signature = read_archive(served)          # the copy TorchServe will load, not the original
            self.input_specs = [s if signature.batch == "static" else replace(s, shape=("batch", *s.shape[1:]))
                                for s in signature.inputs]
            self.output_names = list(signature.outputs)
            # every port free, gRPC's too: its defaults (7070/7071) clash with a second server on the host
            inference, management, metrics, grpc_inference, grpc_management = free_ports(5)
            (work / "config.properties").write_text(
                f"inference_address=http://127.0.0.1:{inference}\nmanagement_address=http://127.0.0.1:{management}\n"
                f"metrics_address=http://127.0.0.1:{metrics}\ngrpc_inference_port={grpc_inference}\n"
                f"grpc_management_port={grpc_management}\ndefault_workers_per_model=1\n"
                f"number_of_netty_threads={max(threads, 1)}\n")
            self.url = f"http://127.0.0.1:{inference}/predictions/{MODEL_NAME}"
            status = f"http://127.0.0.1:{management}/models/{MODEL_NAME}"
            server = ServerProcess("TorchServe", [str(Path(sys.executable).parent / "torchserve"), "--start",
                                                  "--foreground", "--ncs", "--disable-token-auth",
                                                  "--model-store", str(store), "--models",
                                                  f"{MODEL_NAME}={archive.name}", "--ts-config",
                                                  str(work / "config.properties")],
                                   work / "torchserve.log", lambda: worker_ready(status),
                                   env=server_env(threads, TMPDIR=str(tmp)), cwd=work)
            super().__init__(server)


def worker_ready(status_url: str) -> bool:
    """TorchServe's management API says every worker of the model is READY (it loaded the program)."""
    reply = request(status_url, timeout_s=2)
    if reply.status != 200:
        return False
    workers = json.loads(reply.body)[0].get("workers", [])
    return bool(workers) and all(w.get("status") == "READY" for w in workers)
