"""Real pretrained networks that ship inside installed PyPI packages (issue 20, item 4): nothing is downloaded at
run time, the weights are the packages' own files, located without importing the packages (their `__init__`
imports OpenCV, which is not installed).

Networks (name: package file; architecture; fixed input):
- ppocr_det: rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx; PP-OCRv4 text detector, MobileNetV3-class
  backbone (inverted residuals, SE, hard-swish) + DB head; 1x3x320x320.
- ppocr_cls: rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx; MobileNetV3-small-style 2-class
  text-orientation classifier; 1x3x48x192.
- nudenet: nudenet/320n.onnx; YOLOv8n detector (CSP residual blocks, concat, SiLU, DFL head); 1x3x320x320.
- fer: fer/data/emotion_model.hdf5; Keras mini-Xception (separable convs, residual adds), 7 emotions; 1x64x64x1.

PyTorch route: the ONNX graph is given fixed shapes (onnxsim folds the shape arithmetic), its `Constant` weight
nodes become initializers (onnx2torch reads weights from initializers only: the PP-OCR files keep them in
`Constant` nodes), then edgepipe's own bridge code converts it (`normalize_for_onnx2torch`, onnx2torch,
`fix_for_export`). Three rewrites are added here because the bridge lacks them: onnx2torch's `Resize`, `Slice` and
`Split` read constant operands with `.tolist()` / `.numpy()` at run time, which torch.export refuses as data-dependent
(or turns into `item()` calls); with fixed shapes they become `interpolate` to the known size, plain indexing and
`torch.split` with fixed sections. The Keras net goes Keras -> SavedModel -> tf2onnx (edgepipe's
`tensorflow_to_onnx`) -> the same path.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CACHE = Path(os.environ.get("EDGEPIPE_REAL_MODELS_CACHE", Path.home() / ".cache" / "edgepipe-bench" / "real-models"))


@dataclass(frozen=True)
class Network:
    package: str
    file: str
    shape: tuple[int, ...]
    kind: str            # "db-map" | "classifier" | "yolo"
    architecture: str


NETWORKS: dict[str, Network] = {
    "ppocr_det": Network("rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx", (1, 3, 320, 320), "db-map",
                         "PP-OCRv4 det: MobileNetV3-class backbone + DB head (MobileNetV2-class)"),
    "ppocr_cls": Network("rapidocr_onnxruntime", "models/ch_ppocr_mobile_v2.0_cls_infer.onnx", (1, 3, 48, 192),
                         "classifier", "PP-OCR mobile v2.0 cls: MobileNetV3-small-style, 2 classes"),
    "nudenet": Network("nudenet", "320n.onnx", (1, 3, 320, 320), "yolo", "YOLOv8n detector (CSP, concat, SiLU)"),
    "fer": Network("fer", "data/emotion_model.hdf5", (1, 64, 64, 1), "classifier",
                   "Keras mini-Xception: separable convs + residual adds, 7 classes"),
}


def packaged_file(name: str) -> Path:
    """The network's file inside its installed package, found without importing the package."""
    net = NETWORKS[name]
    spec = importlib.util.find_spec(net.package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {net.package} is not installed (requirements-nodeps.lock pins it)")
    path = Path(spec.submodule_search_locations[0]) / net.file
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed {net.package}")
    return path


def _cached(name: str, suffix: str) -> Path:
    source = packaged_file(name)
    digest = hashlib.sha256(source.read_bytes() + repr(NETWORKS[name].shape).encode()).hexdigest()[:16]
    CACHE.mkdir(parents=True, exist_ok=True)
    return CACHE / f"{name}-{digest}{suffix}"


def keras_model() -> Any:
    """fer's mini-Xception, loaded in Keras safe mode (no Lambda layers: nothing of the file's code runs)."""
    import keras

    return keras.saving.load_model(packaged_file("fer"), compile=False, safe_mode=True)


def float_onnx(name: str) -> Path:
    """The float reference as an ONNX file: the packaged one, or for fer its tf2onnx conversion (cached)."""
    if name != "fer":
        return packaged_file(name)
    path = _cached(name, ".tf2onnx.onnx")
    if not path.is_file():
        from edge_pipeline.plugins import Model
        from targets.exporters.onnx_export import tensorflow_to_onnx

        tensorflow_to_onnx(Model("tensorflow", keras_model(), ()), path.with_suffix(".tmp"))
        path.with_suffix(".tmp").rename(path)
    return path


def static_onnx(name: str) -> Path:
    """The float graph at the network's fixed shape, shape arithmetic folded, weights as initializers (cached).
    This is the file for edgepipe's ONNX-file route (`model = "<path>.onnx"`) when the packaged one is refused."""
    path = _cached(name, ".static.onnx")
    if path.is_file():
        return path
    import onnx
    import onnxsim

    from targets.bridges.tf_to_torch import constants_as_initializers

    graph = onnx.load(str(float_onnx(name)))
    graph, ok = onnxsim.simplify(graph, overwrite_input_shapes={graph.graph.input[0].name: list(NETWORKS[name].shape)})
    if not ok:
        raise RuntimeError(f"onnxsim could not check its simplification of {name}")
    constants_as_initializers(graph)
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path.with_suffix(".tmp")))
    path.with_suffix(".tmp").rename(path)
    return path


def torch_module(name: str) -> Any:
    """The network as a torch GraphModule that torch.export takes, through edgepipe's onnx-to-torch bridge code."""
    import onnx
    import torch

    from targets.bridges.onnx_graph_fixes import fix_for_export
    from targets.bridges.tf_to_torch import import_onnx2torch, normalize_for_onnx2torch

    onnx2torch = import_onnx2torch()
    example = torch.zeros(NETWORKS[name].shape)
    module = onnx2torch.convert(normalize_for_onnx2torch(onnx.load(str(static_onnx(name))))).eval()
    module = fix_for_export(module, example)
    return _fix_runtime_reads(module, example).eval()


def _fix_runtime_reads(gm: Any, example: Any) -> Any:
    """onnx2torch's Resize, Slice and Split read their constant operands with `.tolist()` / `.numpy()` at run
    time, which torch.export refuses or turns into `item()` calls; with fixed shapes they become `interpolate` to the
    known size, plain indexing and `torch.split` with fixed sections."""
    import operator

    import torch
    from onnx2torch.node_converters.resize import _onnx_mode_to_torch_mode
    from torch.fx.passes.shape_prop import ShapeProp

    from targets.bridges.onnx_graph_fixes import _constant

    ShapeProp(gm).propagate(example)
    for node in list(gm.graph.nodes):
        if node.op == "call_module" and type(gm.get_submodule(node.target)).__name__ == "OnnxSlice":
            index = _static_index(node.args[0].meta["tensor_meta"].shape, [_constant(gm, a) for a in node.args[1:]])
            if index is not None:
                with gm.graph.inserting_before(node):
                    fixed = gm.graph.call_function(operator.getitem, (node.args[0], index))
                node.replace_all_uses_with(fixed)
                gm.graph.erase_node(node)
            continue
        split = _constant(gm, node.args[1]) if node.op == "call_module" and len(node.args) == 2 and \
            type(gm.get_submodule(node.target)).__name__ == "OnnxSplit13" else None
        if split is not None:
            with gm.graph.inserting_before(node):
                fixed = gm.graph.call_function(torch.split, (node.args[0], split.reshape(-1).tolist()),
                                               {"dim": gm.get_submodule(node.target).axis})
            node.replace_all_uses_with(fixed)
            gm.graph.erase_node(node)
            continue
        if node.op != "call_module" or type(gm.get_submodule(node.target)).__name__ not in ("OnnxResize",
                                                                                            "OnnxResizeV10"):
            continue
        resize = gm.get_submodule(node.target)
        resize = getattr(resize, "_resize", resize)
        shape = tuple(node.meta["tensor_meta"].shape)
        mode = _onnx_mode_to_torch_mode(resize.onnx_mode, len(shape) - 2)
        with gm.graph.inserting_before(node):
            fixed = gm.graph.call_function(torch.nn.functional.interpolate, (node.args[0],),
                                           {"size": shape[2:], "mode": mode, "align_corners": resize.align_corners})
        node.replace_all_uses_with(fixed)
        gm.graph.erase_node(node)
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    _drop_unread_buffers(gm)
    gm.recompile()
    return gm


def _drop_unread_buffers(gm: Any) -> None:
    """The operands the rewrites made constant stay behind as buffers (empty ROI tensors among them), and
    ExecuTorch refuses a program holding a 0-stride tensor: drop every buffer no node reads."""
    read = {str(n.target) for n in gm.graph.nodes if n.op == "get_attr"}
    for name in [n for n, _ in gm.named_buffers() if n not in read]:
        owner, _, attr = name.rpartition(".")
        delattr(gm.get_submodule(owner) if owner else gm, attr)


def _static_index(shape: Any, operands: list[Any]) -> tuple[slice, ...] | None:
    """ONNX Slice (starts, ends[, axes[, steps]]) as a Python index, when every operand is a constant and no step
    is negative; else None (the node is left as onnx2torch wrote it)."""
    if any(o is None for o in operands):
        return None
    starts, ends = (o.reshape(-1).tolist() for o in operands[:2])
    axes = operands[2].reshape(-1).tolist() if len(operands) > 2 else list(range(len(starts)))
    steps = operands[3].reshape(-1).tolist() if len(operands) > 3 else [1] * len(starts)
    if any(step < 0 for step in steps):
        return None
    index = [slice(None)] * len(shape)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        index[axis % len(shape)] = slice(int(start), int(end), int(step))
    return tuple(index)


def ppocr_det() -> Any:
    return torch_module("ppocr_det")


def ppocr_cls() -> Any:
    return torch_module("ppocr_cls")


def nudenet() -> Any:
    return torch_module("nudenet")


def fer() -> Any:
    return torch_module("fer")


def run_float(name: str, batch: np.ndarray) -> np.ndarray:
    """The float reference's main output on a batch, one sample at a time (the fixed-shape graphs take batch 1):
    onnxruntime on the packaged file, or Keras for fer."""
    if name == "fer":
        return np.asarray(keras_model()(batch, training=False))
    import onnxruntime as ort

    session = ort.InferenceSession(str(packaged_file(name)), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {feed: batch[i:i + 1]})[0] for i in range(len(batch))])


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """10 log10(signal energy / error energy), as edgepipe's validation computes it."""
    reference, test = reference.astype(np.float64), test.astype(np.float64)
    noise = float(((reference - test) ** 2).sum())
    return float("inf") if noise == 0 else 10 * float(np.log10(float((reference ** 2).sum()) / noise))


def float_check(name: str, batch: np.ndarray) -> dict[str, float]:
    """Float equivalence of the torch module with the float reference on the same inputs."""
    import torch

    module = torch_module(name)
    with torch.no_grad():
        ours = np.concatenate([module(torch.from_numpy(batch[i:i + 1])).numpy() for i in range(len(batch))])
    reference = run_float(name, batch)
    return {"samples": len(batch), "max_abs_diff": float(np.abs(ours - reference).max()),
            "sqnr_db": round(sqnr_db(reference, ours), 1)}
