"""Runs a Ray Serve application folder for real: `serve run` starts a local Ray cluster on this machine, deploys
the application on 127.0.0.1, and every call is an HTTP request to it (batched by the deployment when requests
arrive together). The folder copy that is served is the one checked (targets.servers.ray_layout)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import ClassVar

from edge_pipeline.errors import InputError, MissingDependency
from edge_pipeline.fsutil import copy_regular_tree
from edge_pipeline.plugins import Runner

from ..servers.process import ServerProcess, free_port, request
from ..servers.ray_layout import CONFIG_FILE, on_port, read_app_folder
from .server_session import ServerSession, server_env, work_dir

START_TIMEOUT_S = 180.0      # a cold Ray cluster on 2 cores takes 20-40 s before the app deploys


class RayServeRunner(Runner):
    name: ClassVar[str] = "ray-serve"
    runtime: ClassVar[str] = "Ray Serve"
    distribution: ClassVar[str] = "ray"
    suffixes: ClassVar[dict[str, str]] = {CONFIG_FILE: "rayserve"}
    in_process: ClassVar[bool] = False

    def open(self, path: Path, threads: int, variant: str | None = None) -> RayServeSession:
        if not path.is_dir() or not (path / CONFIG_FILE).is_file():
            raise InputError(f"{path} is not a Ray Serve application folder: {CONFIG_FILE} is missing")
        if not (Path(sys.executable).parent / "serve").is_file():
            raise MissingDependency("ray[serve]", "the ray-serve runner", "pip install 'ray[serve]==2.60.0'")
        return RayServeSession(path, threads)


class RayServeSession(ServerSession):
    server_name = "Ray Serve"
    runtime_label = "Ray Serve, one replica, each call an HTTP request on 127.0.0.1"

    def __init__(self, folder: Path, threads: int):
        with work_dir("edgepipe-rayserve-", self) as work, work_dir("ep-ray-", self, short=True) as ray_dir:
            app = work / "app"
            copy_regular_tree(folder, app, "Ray Serve application folder")
            signature = read_app_folder(app)              # the copy Ray will import, not the original
            self.input_specs, self.output_names = list(signature.inputs), list(signature.outputs)
            port = free_port()
            (app / CONFIG_FILE).write_text(on_port(app / CONFIG_FILE, port))
            self.url = f"http://127.0.0.1:{port}/"
            routes = f"http://127.0.0.1:{port}/-/routes"
            server = ServerProcess("Ray Serve", [str(Path(sys.executable).parent / "serve"), "run", CONFIG_FILE,
                                                 "--address", "local"],
                                   work / "serve.log", lambda: deployed(routes),
                                   env=server_env(threads, RAY_TMPDIR=str(ray_dir), RAY_USAGE_STATS_ENABLED="0",
                                                  HOME=str(work)),   # Ray keeps its auth token in ~/.ray
                                   cwd=app, start_timeout_s=START_TIMEOUT_S)
            super().__init__(server)


def deployed(routes_url: str) -> bool:
    """Serve's proxy lists the application's route (it is deployed and taking requests)."""
    reply = request(routes_url, timeout_s=2)
    return reply.status == 200 and "edgepipe" in reply.body.decode(errors="replace")
