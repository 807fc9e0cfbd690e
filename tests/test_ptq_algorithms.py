"""Post-training algorithms before any fallback (issue 20): `[quantization] algorithms` runs NNCF's bias
correction (full or fast) and SmoothQuant, and `calibration-method = "percentile"` its quantile range estimator,
on the backend's own PT2E quantizer; the report says which engine and algorithms made the artifact. A name no
installed quantizer offers is refused before any work."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_pipeline.config import load_config
from edge_pipeline.errors import ConfigError
from edge_pipeline.plugins import DataBundle, Model
from quantization.sensitivity import torch_predict
from quantization.xnnpack_int8 import XnnpackInt8

from .conftest import run_cli
from .test_fallback_regions import RESIDUAL_NET


@pytest.mark.parametrize("value,needle", [('["brecq"]', "brecq"), ('"bias-correction"', "must be list"),
                                          ("[1]", "[1]")])
def test_an_unknown_algorithm_is_refused_naming_the_key(value: str, needle: str, tmp_path: Path) -> None:
    (tmp_path / "edgepipe.toml").write_text(f"[quantization]\nalgorithms = {value}\n")
    with pytest.raises(ConfigError, match="quantization.algorithms") as info:
        load_config(cwd=tmp_path)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_algorithms_change_the_int8_model_and_keep_it_valid() -> None:
    namespace: dict[str, object] = {}
    exec(compile(RESIDUAL_NET, "residual_net", "exec"), namespace)
    module = namespace["make"]()
    images, labels = namespace["evaluate"]()[0]
    data = DataBundle.single("x", namespace["example"](), namespace["calibration"]()[0], images, labels)
    model = Model("torch", module, (torch.from_numpy(data.example.arrays[0]),), {}, ("x",))
    outputs = {}
    for algorithms, method in [((), "histogram"), (("bias-correction",), "histogram"), ((), "percentile")]:
        quantized, predict = XnnpackInt8().candidates(model, data, method, None, algorithms).quantize()
        outputs[algorithms, method] = predict(data.eval_inputs)
        engine = quantized.provenance["quantization"]["engine"]
        assert engine.startswith("nncf" if algorithms or method == "percentile" else "torchao"), engine
    reference = torch_predict(module, data.batch)(data.eval_inputs)
    plain = outputs[(), "histogram"]
    for key, result in outputs.items():
        assert np.isfinite(result).all() and result.shape == reference.shape, key
    assert not np.array_equal(outputs[("bias-correction",), "histogram"], plain)   # bias correction moved outputs


def test_a_build_with_bias_correction_reports_its_engine(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "edgepipe.toml").write_text('[targets.android]\nformats = ["pte:int8"]\n'
                                            '[quantization]\nalgorithms = ["bias-correction"]\n'
                                            'calibration-method = "percentile"\n')
    proc = run_cli("build", "--out", str(tmp_path / "out"), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (artifact,) = json.loads(proc.stdout)["artifacts"]
    quantization = artifact["export"]["metadata"]["quantization"]
    assert quantization["engine"].startswith("nncf ") and quantization["algorithms"] == ["bias-correction"]
    assert quantization["calibration_method"] == "percentile" and artifact["status"] == "ok"
