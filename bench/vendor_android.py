"""The four android conversions written by hand with the vendor tools, as a user would without edgepipe:
ExecuTorch fp32 and int8 (torch.export + PT2E XNNPACKQuantizer + to_edge_transform_and_lower with the
XnnpackPartitioner) and LiteRT fp32 and int8 (litert_torch.convert, with and without its PT2E quantizer),
same model and calibration samples as the edgepipe build. No validation, no profiling.

    python vendor_android.py MODULE:FACTORY MODULE:CALIBRATION OUT_DIR
prints one JSON line: {"seconds": {artifact: s}, "conversion_s": total}."""
from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path


def load(ref: str):
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def batches(calibration) -> list:
    import numpy as np
    import torch

    out = []
    for item in calibration:
        array = item[0] if isinstance(item, (tuple, list)) else item
        out.append(torch.from_numpy(np.array(array, dtype=np.float32)))
    return out


def main() -> None:
    import torch

    factory, calibration_ref, out_dir = sys.argv[1:4]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    model = load(factory)().eval()
    calibration = [b[i:i + 1].clone() for b in batches(load(calibration_ref)()) for i in range(len(b))]
    example = (calibration[0],)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seconds = {}

    def timed(name: str, convert) -> None:
        started = time.perf_counter()
        (out / name).write_bytes(convert())
        seconds[name] = round(time.perf_counter() - started, 2)

    def pte(module) -> bytes:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        program = torch.export.export(module, example)
        return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer

    def pt2e(quantizer, fold: bool):
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        prepared = prepare_pt2e(torch.export.export(model, example).module(), quantizer)
        with torch.no_grad():
            for sample in calibration:
                prepared(sample)
        return convert_pt2e(prepared, fold_quantize=fold)

    def pte_int8() -> bytes:
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )

        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        return pte(pt2e(quantizer, True))

    def tflite(module, quant_config=None) -> bytes:
        import tempfile

        import litert_torch

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.tflite"
            litert_torch.convert(module, example, quant_config=quant_config).export(str(path))
            return path.read_bytes()

    def tflite_int8() -> bytes:
        from litert_torch.quantize import pt2e_quantizer
        from litert_torch.quantize.quant_config import QuantConfig

        quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
            pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True))
        return tflite(pt2e(quantizer, False), QuantConfig(pt2e_quantizer=quantizer))

    timed("model-fp32.pte", lambda: pte(model))
    timed("model-int8.pte", pte_int8)
    timed("model-fp32.tflite", lambda: tflite(model))
    timed("model-int8.tflite", tflite_int8)
    print(json.dumps({"seconds": seconds, "conversion_s": round(sum(seconds.values()), 2)}))


if __name__ == "__main__":
    main()
