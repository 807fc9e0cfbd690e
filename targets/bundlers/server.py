"""The server bundle (`sample_apps/server`): TF Serving's `models.config` over its model base path, TorchServe's
`config.properties` over its model store, the Ray Serve application folder, and one predict request made from
the build's first recorded call with the outputs the source gave for it, so each deployed server can be
checked with one `curl` (all three take the same JSON body)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from edge_pipeline.plugins import Bundler
from edge_pipeline.types import JsonObject

from ..servers.tf_serving_layout import MODEL_NAME

if TYPE_CHECKING:
    from edge_pipeline.report.model import Report

REQUEST, EXPECTED, MODELS_CONFIG, TORCHSERVE_CONFIG = ("predict_request.json", "predict_expected.json",
                                                      "models.config", "config.properties")


class ServerBundler(Bundler):
    name: ClassVar[str] = "server"
    formats: ClassVar[tuple[str, ...] | None] = ("tfserving", "torchserve", "rayserve", "onnx")
    replays_recorded: ClassVar[bool] = True    # a request takes every named input, whatever its dtype

    def generate(self, dest: Path, report: Report, folder: Path) -> JsonObject:
        from edge_pipeline.building.bundle import runnable
        from edge_pipeline.building.recorded import RECORDED, load_recording

        layouts = [a for a in runnable(self.name, report) if a.format == "tfserving" and a.path]
        if layouts:
            base = f"/models/{layouts[0].path}/{MODEL_NAME}"     # where the README's command mounts models/
            (dest / MODELS_CONFIG).write_text(
                f"model_config_list {{\n  config {{\n    name: '{MODEL_NAME}'\n"
                f"    base_path: '{base}'\n    model_platform: 'tensorflow'\n  }}\n}}\n")
        archives = [a for a in runnable(self.name, report) if a.format == "torchserve" and a.path]
        if archives:
            (dest / TORCHSERVE_CONFIG).write_text(
                "# TorchServe: `torchserve --start --ncs --disable-token-auth --ts-config config.properties`\n"
                "# token auth is off and only this machine may call it: put it behind your own front end before\n"
                "# opening inference_address to other hosts\n"
                "inference_address=http://127.0.0.1:8080\nmanagement_address=http://127.0.0.1:8081\n"
                f"metrics_address=http://127.0.0.1:8082\nmodel_store=models/{archives[0].path}/model-store\n"
                "load_models=model=model.mar\ndefault_workers_per_model=1\n")
        recording = load_recording(folder / RECORDED)
        if recording is None:
            return {"request": None}
        first = recording.inputs[:recording.batch]
        request = {"signature_name": "serving_default",
                   "inputs": {name: np.asarray(a).tolist() for name, a in zip(first.names, first.arrays)}}
        (dest / REQUEST).write_text(json.dumps(request) + "\n")
        expected = {name: np.asarray(a).tolist() for name, a in zip(recording.first_outputs.names,
                                                                      recording.first_outputs.arrays)}
        (dest / EXPECTED).write_text(json.dumps({"outputs": expected}) + "\n")
        return {"request": REQUEST, "expected": EXPECTED, "models_config": MODELS_CONFIG if layouts else None,
                "torchserve_config": TORCHSERVE_CONFIG if archives else None}
