"""What a Ray Serve application folder holds and the config that deploys it: written by the exporter, rewritten
with a free port by the runner."""
from __future__ import annotations

APP_FILE, CONFIG_FILE, MODEL_FILE, SIGNATURE_FILE = "edgepipe_serve_app.py", "serve_config.yaml", "model.onnx", \
    "signature.json"
DEFAULT_PORT = 8000
MAX_BATCH = 16


def serve_config(port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> str:
    """The config `serve run` reads in this folder (its import path is found in the current directory; a cluster
    deploy adds `runtime_env: {working_dir: <remote URI of this folder>}`, as Serve takes no local paths there)."""
    return (f"# Deploys the validated model with Ray Serve: `serve run {CONFIG_FILE}` in this folder.\n"
            f"proxy_location: HeadOnly\nhttp_options:\n  host: {host}\n  port: {port}\n"
            f"applications:\n  - name: edgepipe\n    route_prefix: /\n    import_path: {APP_FILE[:-3]}:app\n"
            f"    deployments:\n      - name: OnnxModel\n"
            f"        num_replicas: 1\n        max_ongoing_requests: 64\n")
