"""Runs a Ray Serve application folder for real: `serve run` starts a local Ray cluster on this machine, deploys
the application on 127.0.0.1, and every call is an HTTP request to it (batched by the deployment when requests
arrive together)."""
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
from ..servers.ray_layout import CONFIG_FILE, SIGNATURE_FILE
from .server_session import ServerSession

START_TIMEOUT_S = 180.0      # a cold Ray cluster on 2 cores takes 20-40 s before the app deploys


class RayServeRunner(Runner):
    name: ClassVar[str] = "ray-serve"
    runtime: ClassVar[str] = "Ray Serve"
    distribution: ClassVar[str] = "ray"
    suffixes: ClassVar[dict[str, str]] = {CONFIG_FILE: "rayserve"}
    in_process: ClassVar[bool] = False

    def open(self, path: Path, threads: int, variant: str | None = None) -> RayServeSession:
        if not (path / CONFIG_FILE).is_file() or not (path / SIGNATURE_FILE).is_file():
            raise InputError(f"{path} is not a Ray Serve application folder: {CONFIG_FILE} or {SIGNATURE_FILE} "
                             f"is missing")
        if not (Path(sys.executable).parent / "serve").is_file():
            raise MissingDependency("ray[serve]", "the ray-serve runner", "pip install 'ray[serve]==2.60.0'")
        return RayServeSession(path, threads)


class RayServeSession(ServerSession):
    server_name = "Ray Serve"
    runtime_label = "Ray Serve, one replica, each call an HTTP request on 127.0.0.1"

    def __init__(self, folder: Path, threads: int):
        self._work = Path(tempfile.mkdtemp(prefix="edgepipe-rayserve-"))
        self._ray_dir = self._work
        app = self._work / "app"
        shutil.copytree(folder, app)
        port = free_port()
        (app / CONFIG_FILE).write_text(on_port(app / CONFIG_FILE, port))
        try:
            signature = json.loads((app / SIGNATURE_FILE).read_text())
            self.input_specs = [TensorSpec(i["name"], tuple(i["shape"]), i["dtype"]) for i in signature["inputs"]]
            self.output_names = [str(o) for o in signature["outputs"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{folder / SIGNATURE_FILE} is not an edgepipe signature: {exc}") from exc
        self.url = f"http://127.0.0.1:{port}/"
        routes = f"http://127.0.0.1:{port}/-/routes"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        self._ray_dir = short_temp_dir()
        env |= {"RAY_TMPDIR": str(self._ray_dir), "OMP_NUM_THREADS": str(threads or os.cpu_count() or 1),
                "RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0",
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        server = ServerProcess("Ray Serve", [str(Path(sys.executable).parent / "serve"), "run", CONFIG_FILE,
                                             "--address", "local"],
                               self._work / "serve.log", lambda: _deployed(routes), env=env, cwd=app,
                               start_timeout_s=START_TIMEOUT_S)
        super().__init__(server)

    def cleanup(self) -> None:
        shutil.rmtree(self._work, ignore_errors=True)
        shutil.rmtree(self._ray_dir, ignore_errors=True)


def short_temp_dir() -> Path:
    """Ray's session folder for the server: Ray puts Unix sockets some 70 characters below it, and a socket path
    may not exceed 107 bytes, so it lives directly under /tmp when the temp folder's own path is long."""
    default = Path(tempfile.gettempdir())
    parent = default if len(str(default)) <= 20 or not Path("/tmp").is_dir() else Path("/tmp")
    return Path(tempfile.mkdtemp(prefix="ep-ray-", dir=parent))


def _deployed(routes_url: str) -> bool:
    reply = request(routes_url, timeout_s=2)
    return reply.status == 200 and "edgepipe" in reply.body.decode(errors="replace")


def on_port(config: Path, port: int) -> str:
    """The shipped config as it is, but served on 127.0.0.1:`port` (so what is validated is what ships)."""
    import yaml

    try:
        data = yaml.safe_load(config.read_text())
        data["http_options"] = {**(data.get("http_options") or {}), "host": "127.0.0.1", "port": port}
    except (yaml.YAMLError, AttributeError, TypeError) as exc:
        raise InputError(f"{config} is not a Ray Serve config: {exc}") from exc
    return str(yaml.safe_dump(data, sort_keys=False))
