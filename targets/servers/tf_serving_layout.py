"""What a TF Serving layout artifact holds: `<model name>/<version>/` with a SavedModel and its warm-up requests.
Written by the exporter, read by the runner, mounted by the bundle's models.config."""
from __future__ import annotations

from pathlib import Path

MODEL_NAME = "model"     # TF Serving's --model_name; the bundle's models.config and commands use it
VERSION = "1"            # TF Serving serves the highest numbered version folder
SIGNATURE = "serving_default"
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"


def version_dir(artifact: Path) -> Path:
    """The SavedModel inside a TF Serving layout artifact."""
    return artifact / MODEL_NAME / VERSION
