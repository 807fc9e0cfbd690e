"""Text inputs for the two PP-OCR networks, so that they are judged on their own task (bench/real_data.py).

Why: the orientation classifier decides whether a text line is upright or turned 180 degrees. On photo crops,
mostly without text, it has no task: measured here by hand, 29% of its float decisions on the 128 evaluation
crops had a softmax margin under 0.2, and those flip under any noise, so agreement with float there measures the
input set, not the quantization. On text lines its float decisions are confident (median margin over 0.9,
asserted in tests/test_real_models.py) and the true orientation is known, so accuracy is measured against ground
truth. The detector likewise gets scenes that hold text.

Two sources, neither downloaded:
- real lines: windows along the text lines of scikit-image's `page.png` (a photographed book page), found by
  the page's own ink profile;
- rendered lines: words drawn with Pillow's built-in scalable font (no system font is read) at random sizes,
  contrast, tint and sensor noise, the way PaddleOCR's own orientation data is synthesised.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

WORDS = ("the of and to in is you that it he was for on are as with his they at be this have from or one had by "
         "word but not what all were we when your can said there use an each which she do how their if will up "
         "other about out many then them these so some her would make like him into time has look two more write "
         "go see number no way could people my than first water been call who its now find long down day did get "
         "come made may part over new sound take only little work know place year live me back give most very "
         "after thing our just name good sentence man think say great where help through much before line right "
         "too mean old any same tell boy follow came want show also around form three small set put end does "
         "another well large must big even such because turn here why ask went men read need land different home "
         "us move try kind hand picture again change off play spell air away animal house point page letter "
         "mother answer found study still learn should world 2024 17 3.5 100% model phone").split()
REAL_SHARE = 0.25                   # of the classifier's lines, windows of page.png; the rest rendered
CLASSIFIER_HEIGHT, CLASSIFIER_WIDTH = 48, 192


def render_line(rng: np.random.Generator) -> np.ndarray:
    """One rendered text line, RGB uint8 at its natural size: 2-6 words, 14-33 px type, dark on light (85%) or
    light on dark, a colour tint and Gaussian sensor noise."""
    from PIL import Image, ImageDraw, ImageFont

    size = int(rng.integers(14, 34))
    font = ImageFont.load_default(size=size)
    text = " ".join(rng.choice(WORDS, int(rng.integers(2, 7))))
    text = text.upper() if rng.random() < 0.15 else text.capitalize() if rng.random() < 0.3 else text
    left, top, right, bottom = font.getbbox(text)
    width, height = right + int(rng.integers(2, 12)), int(size * rng.uniform(1.15, 1.6))
    light = rng.random() < 0.85
    background = int(rng.integers(170, 256)) if light else int(rng.integers(0, 80))
    ink = int(rng.integers(0, 90)) if light else int(rng.integers(180, 256))
    image = Image.new("L", (width, height), background)
    ImageDraw.Draw(image).text((int(rng.integers(1, 6)), (height - (bottom - top)) // 2 - top), text, fill=ink,
                               font=font)
    rgb = np.repeat(np.asarray(image, np.float32)[..., None], 3, axis=2) * rng.uniform(0.8, 1.0, 3)
    return np.clip(rgb + rng.normal(0.0, rng.uniform(0.0, 8.0), rgb.shape), 0, 255).astype(np.uint8)


@lru_cache(maxsize=1)
def _page() -> tuple[np.ndarray, tuple[tuple[int, int], ...]]:
    """page.png (grayscale) and its text lines' row bands: rows whose share of ink (darker than the local
    background by 40 levels) exceeds 12%, each widened by 3 rows."""
    from PIL import Image
    from scipy import ndimage

    try:
        from . import real_data
    except ImportError:
        import real_data
    path = next(p for p in real_data.photo_paths() if p.name == "page.png")
    page = np.asarray(Image.open(path).convert("L"), np.float32)
    ink = (ndimage.maximum_filter(page, size=15) - page) > 40
    rows = ndimage.uniform_filter1d(ink.mean(axis=1), 3) > 0.12
    edges = np.flatnonzero(np.diff(np.concatenate([[0], rows.astype(np.int8), [0]])))
    bands = tuple((max(0, int(a) - 3), min(page.shape[0], int(b) + 3)) for a, b in zip(edges[::2], edges[1::2])
                  if b - a >= 8)
    return page.astype(np.uint8), bands


def page_line(rng: np.random.Generator) -> np.ndarray:
    """A window of one of page.png's text lines, 3-9 line heights wide, RGB uint8."""
    page, bands = _page()
    top, bottom = bands[int(rng.integers(len(bands)))]
    width = min(page.shape[1], int((bottom - top) * rng.uniform(3.0, 9.0)))
    left = int(rng.integers(0, page.shape[1] - width + 1))
    return np.repeat(page[top:bottom, left:left + width, None], 3, axis=2)


def classifier_input(rgb: np.ndarray) -> np.ndarray:
    """rapidocr's orientation-classifier preprocessing: height 48 at the line's aspect (at most 192 wide), BGR,
    (x / 255 - 0.5) / 0.5, CHW, zero-padded on the right to 192."""
    from PIL import Image

    height, width = rgb.shape[:2]
    resized_width = min(CLASSIFIER_WIDTH, math.ceil(CLASSIFIER_HEIGHT * width / height))
    image = np.asarray(Image.fromarray(rgb).resize((resized_width, CLASSIFIER_HEIGHT), Image.BILINEAR), np.float32)
    out = np.zeros((3, CLASSIFIER_HEIGHT, CLASSIFIER_WIDTH), np.float32)
    out[:, :, :resized_width] = ((image[..., ::-1] / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)
    return out


@lru_cache(maxsize=4)
def lines(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` classifier inputs and their true orientation (0 upright, 1 turned 180 degrees, half each by draw);
    cached, so callers copy before they change them."""
    rng = np.random.default_rng(seed)
    inputs, labels = np.empty((count, 3, CLASSIFIER_HEIGHT, CLASSIFIER_WIDTH), np.float32), np.empty(count, np.int64)
    for i in range(count):
        rgb = page_line(rng) if rng.random() < REAL_SHARE else render_line(rng)
        labels[i] = rng.random() < 0.5
        inputs[i] = classifier_input(np.ascontiguousarray(rgb[::-1, ::-1] if labels[i] else rgb))
    return inputs, labels


def scenes(photos: np.ndarray, seed: int) -> np.ndarray:
    """The photo crops (N, H, W, 3 uint8) with 2-5 rendered lines pasted at random places each (a copy)."""
    rng = np.random.default_rng(seed)
    out = photos.copy()
    for image in out:
        for _ in range(int(rng.integers(2, 6))):
            line = render_line(rng)[:image.shape[0] - 1, :image.shape[1] - 1]
            top = int(rng.integers(0, image.shape[0] - line.shape[0]))
            left = int(rng.integers(0, image.shape[1] - line.shape[1]))
            image[top:top + line.shape[0], left:left + line.shape[1]] = line
    return out
