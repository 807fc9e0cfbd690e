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
from edge_pipeline.fsutil import copy_regular_tree
from edge_pipeline.plugins import Runner
from edge_pipeline.tensors import TensorSpec

from ..servers.process import ServerProcess, free_port, request
from ..servers.ray_layout import APP_FILE, CONFIG_FILE, MODEL_FILE, SIGNATURE_FILE
from .server_session import ServerSession

APP = Path(__file__).resolve().parents[1] / "servers" / "ray_app.py"
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
        app = path / APP_FILE
        files = {p.name for p in path.iterdir()}
        if files != {APP_FILE, CONFIG_FILE, MODEL_FILE, SIGNATURE_FILE}:
            raise InputError(f"{path} is not an edgepipe Ray Serve application: it holds "
                             f"{', '.join(sorted(files))} (a module there would be imported by the app)")
        if not app.is_file() or app.read_bytes() != APP.read_bytes():
            raise InputError(f"{path} is not an edgepipe Ray Serve application: {APP_FILE} differs from edgepipe's "
                             f"(Ray would run that code, so it is not started)")
        if not (Path(sys.executable).parent / "serve").is_file():
            raise MissingDependency("ray[serve]", "the ray-serve runner", "pip install 'ray[serve]==2.60.0'")
        on_port(path / CONFIG_FILE, 0)      # checked before anything is copied or started
        return RayServeSession(path, threads, read_signature(path))


class RayServeSession(ServerSession):
    server_name = "Ray Serve"
    runtime_label = "Ray Serve, one replica, each call an HTTP request on 127.0.0.1"

    def __init__(self, folder: Path, threads: int, signature: tuple[list[TensorSpec], list[str]]):
        self.input_specs, self.output_names = signature
        self._work = Path(tempfile.mkdtemp(prefix="edgepipe-rayserve-"))
        self._ray_dir = self._work
        app = self._work / "app"
        copy_regular_tree(folder, app, "Ray Serve application folder")
        port = free_port()
        (app / CONFIG_FILE).write_text(on_port(app / CONFIG_FILE, port))
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


def read_signature(folder: Path) -> tuple[list[TensorSpec], list[str]]:
    """The inputs and outputs the app checks requests against (signature.json, written by the exporter)."""
    try:
        signature = json.loads((folder / SIGNATURE_FILE).read_text())
        return ([TensorSpec(str(i["name"]), tuple(i["shape"]), str(i["dtype"])) for i in signature["inputs"]],
                [str(o) for o in signature["outputs"]])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{folder / SIGNATURE_FILE} is not an edgepipe signature: {exc}") from exc


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
        apps = data["applications"]
    except (yaml.YAMLError, AttributeError, TypeError, KeyError) as exc:
        raise InputError(f"{config} is not a Ray Serve config: {exc}") from exc
    expected = f"{APP_FILE[:-3]}:app"
    if not isinstance(apps, list) or len(apps) != 1 or not isinstance(apps[0], dict) \
            or apps[0].get("import_path") != expected or "runtime_env" in apps[0] or "runtime_env" in data:
        raise InputError(f"{config} must deploy one application, {expected}, with no runtime_env (what it would "
                         f"import or install is not edgepipe's)")
    return str(yaml.safe_dump(data, sort_keys=False))
