"""What a Ray Serve application folder holds, the config that deploys it, and the checks made before `serve run`
starts on one: Ray imports the app's module (and anything beside it) and installs what a config's runtime_env
asks for, so only a folder of exactly edgepipe's app, model, signature and config is served."""
from __future__ import annotations

from pathlib import Path

from edge_pipeline.errors import InputError

from .signature import SIGNATURE_FILE, ServedSignature

APP_FILE, CONFIG_FILE, MODEL_FILE = "edgepipe_serve_app.py", "serve_config.yaml", "model.onnx"
APP = Path(__file__).resolve().parent / "ray_app.py"       # shipped as APP_FILE, as it is
FOLDER_FILES = frozenset({APP_FILE, CONFIG_FILE, MODEL_FILE, SIGNATURE_FILE})
DEFAULT_PORT = 8000
MAX_BATCH = 16


def serve_config(port: int = DEFAULT_PORT, host: str = "0.0.0.0") -> str:
    """The config `serve run` reads in this folder (the app is imported from the current directory). A cluster
    deploy (`serve deploy`) also needs the folder on its nodes: `runtime_env: {working_dir: <remote URI>}`, as
    Serve takes no local paths there."""
    return (f"# Deploys the validated model with Ray Serve: `serve run {CONFIG_FILE}` in this folder.\n"
            f"proxy_location: HeadOnly\nhttp_options:\n  host: {host}\n  port: {port}\n"
            f"applications:\n  - name: edgepipe\n    route_prefix: /\n    import_path: {APP_FILE[:-3]}:app\n"
            f"    deployments:\n      - name: OnnxModel\n"
            f"        num_replicas: 1\n        max_ongoing_requests: 64\n")


def read_app_folder(folder: Path) -> ServedSignature:
    """The app's signature, once the folder is shown to hold exactly what edgepipe puts there; one line otherwise."""
    files = {p.name for p in folder.iterdir()}
    if files != FOLDER_FILES:
        raise InputError(f"{folder} is not an edgepipe Ray Serve application: it holds {', '.join(sorted(files))} "
                         f"(Ray would import a module found there)")
    if any(p.is_symlink() or not p.is_file() for p in folder.iterdir()):
        raise InputError(f"{folder} is not an edgepipe Ray Serve application: it holds a link or a folder")
    if (folder / APP_FILE).read_bytes() != APP.read_bytes():
        raise InputError(f"{folder} is not an edgepipe Ray Serve application: {APP_FILE} differs from edgepipe's "
                         f"(Ray would run that code)")
    return ServedSignature.from_json((folder / SIGNATURE_FILE).read_bytes(), str(folder / SIGNATURE_FILE))


def on_port(config: Path, port: int) -> str:
    """The shipped config, served on 127.0.0.1:`port`, once it is shown to be edgepipe's own apart from its
    address and the deployment's replica settings (any other key could make Ray install or import something)."""
    import yaml

    try:
        data = yaml.safe_load(config.read_text())
        expected = yaml.safe_load(serve_config())
        data["http_options"] = expected["http_options"] = {"host": "127.0.0.1", "port": port}
        deployment = data["applications"][0]["deployments"][0]
        tunable = {k: deployment.pop(k) for k in ("num_replicas", "max_ongoing_requests") if k in deployment}
        expected["applications"][0]["deployments"][0] = {"name": "OnnxModel"}
    except (yaml.YAMLError, OSError, AttributeError, TypeError, KeyError, IndexError) as exc:
        raise InputError(f"{config} is not a Ray Serve config: {type(exc).__name__}: {exc}") from exc
    if data != expected or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 1024
                                   for v in tunable.values()):
        raise InputError(f"{config} is not edgepipe's Ray Serve config: only the address, num_replicas and "
                         f"max_ongoing_requests may differ (other keys could make Ray import or install code)")
    deployment.update(tunable)
    return str(yaml.safe_dump(data, sort_keys=False))
