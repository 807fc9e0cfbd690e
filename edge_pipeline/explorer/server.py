"""The Model Explorer web app served for one exploration, on 127.0.0.1 only.

Model Explorer's own server (`model_explorer.server.start`) also reads any local text file by path, converts any
model path it is sent, accepts uploads and asks GitHub for a newer version when it starts. This server serves
its web app with only what the page needs to show one model: the graph (converted once, before serving), the
overlays, the extensions list and a health check. Any other model path or command is refused.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from edge_pipeline.errors import EnvironmentProblem, MissingDependency
from edge_pipeline.explorer.checks import EXPLORER, Exploration, extension_manager
from edge_pipeline.types import JsonValue

if TYPE_CHECKING:
    import flask
    from werkzeug.serving import BaseWSGIServer

HOST = "127.0.0.1"
HEALTHY = "model_explorer_ok"      # what Model Explorer's own /check_health answers
# The page loads nothing from elsewhere: its Google web fonts are cut out, and the policy blocks anything else
EXTERNAL_FONT = re.compile(r"@font-face\s*\{[^}]*url\(\s*['\"]?https?://[^}]*\}")
PRECONNECT = re.compile(r"<link\s+rel=\"preconnect\"[^>]*>")
SAME_ORIGIN_ONLY = ("default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval' 'wasm-unsafe-eval' blob:; "
                    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
                    "worker-src 'self' blob:; connect-src 'self'")


def web_app_dir() -> Path:
    try:
        import model_explorer
    except ImportError:
        raise MissingDependency(EXPLORER, "edgepipe explore") from None
    return Path(model_explorer.__file__).parent / "web_app"


def offline_index(html: str) -> str:
    """The web app's page without its web fonts from Google (its own bundled fonts and icons remain)."""
    return PRECONNECT.sub("", EXTERNAL_FONT.sub("", html))


def make_app(exploration: Exploration, extensions: list[JsonValue]) -> flask.Flask:
    import flask

    app = flask.Flask("edgepipe-explore", static_folder=None)
    assets = web_app_dir()

    def answer(value: JsonValue, status: int = 200) -> flask.Response:
        return flask.Response(json.dumps(value), status=status, mimetype="application/json")

    def command(cmd: object) -> flask.Response:
        if not isinstance(cmd, dict) or cmd.get("cmdId") != "convert" or \
                cmd.get("modelPath") != str(exploration.artifact):
            return answer({"error": f"this server shows {exploration.artifact} only"}, 403)
        return answer(exploration.graphs)

    page = offline_index((assets / "index.html").read_text(encoding="utf-8"))

    @app.get("/")
    def index() -> flask.Response:
        return flask.Response(page, mimetype="text/html")

    @app.get("/<path:asset>")
    def static_asset(asset: str) -> flask.Response:
        return flask.send_from_directory(assets, asset)     # refuses anything outside the web app's folder

    @app.get("/check_health")
    def health() -> str:
        return HEALTHY

    @app.get("/api/v1/get_extensions")
    def get_extensions() -> flask.Response:
        return answer(extensions)

    @app.get("/api/v1/check_new_version")
    def check_new_version() -> flask.Response:       # no network: the installed version is the one shown
        return answer({"version": "", "runningVersion": metadata.version(EXPLORER)})

    @app.get("/api/v1/send_command")
    def send_command() -> flask.Response:
        try:
            return command(json.loads(flask.request.args.get("json", "{}")))
        except ValueError:
            return answer({"error": "the command is not JSON"}, 400)

    @app.post("/apipost/v1/send_command")
    def send_command_post() -> flask.Response:
        return command(flask.request.get_json(silent=True))

    @app.get("/api/v1/load_node_data")
    def load_node_data() -> flask.Response:
        index = flask.request.args.get("node_data_index", "")
        if not index.isdigit() or int(index) >= len(exploration.overlays):
            return answer({"error": "no such node data"}, 404)
        return answer({"content": exploration.overlays[int(index)].content})

    @app.get("/api/v1/notify_user_provided_model_path")
    def notify_model_path() -> flask.Response:     # Model Explorer's server watches the file; this one does not
        return answer({"status": "ok"})

    @app.get("/apistream/server_director")
    def server_director() -> flask.Response:
        return flask.Response(status=204)    # nothing to push; 204 tells the page's EventSource not to retry

    @app.after_request
    def headers(response: flask.Response) -> flask.Response:
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = SAME_ORIGIN_ONLY
        return response

    return app


def extensions_metadata(exploration: Exploration) -> list[JsonValue]:
    """The one adapter this server converts with (the page lists what it may ask for)."""
    return [e for e in extension_manager().get_extensions_metadata() if e.get("id") == exploration.view.adapter]


@dataclass
class RunningExplorer:
    """A started server: its address; `wait` serves until Ctrl-C (or a stopping signal), `stop` closes it."""

    exploration: Exploration
    url: str
    server: BaseWSGIServer

    def wait(self) -> None:
        try:
            threading.Event().wait()
        finally:
            self.stop()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> RunningExplorer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def start(exploration: Exploration, port: int) -> RunningExplorer:
    """A server bound to 127.0.0.1:`port` (0: any free port), serving in a background thread."""
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").disabled = True     # no request log on the terminal
    app = make_app(exploration, extensions_metadata(exploration))
    try:
        server = make_server(HOST, port, app, threaded=True)
    except (OSError, SystemExit) as exc:       # werkzeug exits (status 1) when the port is taken
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "the address is in use"
        raise EnvironmentProblem(f"Model Explorer cannot listen on {HOST}:{port}: {reason}"
                                 f"{' (pass another --port)' if port else ''}") from None
    threading.Thread(target=server.serve_forever, name="edgepipe-explore", daemon=True).start()
    return RunningExplorer(exploration, f"http://{HOST}:{server.server_port}/?data={exploration.url_data()}", server)
