"""Helpers for the face, predict-with-faces, report and explain tests: composed photos and one
tiny FER2013-trained run shared by the test modules of a session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from emotion_tf.faces.detector import FaceBox


def clutter(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A face-free RGB picture: gradient, rectangles, ellipses, lines, noise, slight blur."""
    rng = np.random.default_rng(seed)
    width, height = size
    ramp = np.linspace(-40, 40, width)[None, :, None] * rng.uniform(-1, 1, size=3)
    pixels = np.clip(rng.uniform(40, 215, size=3) + ramp + np.zeros((height, width, 3)), 0, 255)
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(20):
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(10, 200)), y0 + int(rng.integers(10, 200))
        [draw.rectangle, draw.ellipse][int(rng.integers(0, 2))]([x0, y0, x1, y1], fill=colour)
        draw.line([x1, y0, x0, y1], fill=colour, width=int(rng.integers(1, 6)))
    noisy = np.asarray(image) + rng.normal(0, 6, size=(height, width, 3))
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    return image.filter(ImageFilter.GaussianBlur(0.8))


def paste(canvas: Image.Image, faces: list[Path], boxes: list[FaceBox]) -> Image.Image:
    """A copy of `canvas` with each face image scaled into its (square) box."""
    out = canvas.copy()
    for path, box in zip(faces, boxes):
        with Image.open(path) as face:
            out.paste(face.convert("RGB").resize((box.w, box.h), Image.BICUBIC), (box.x, box.y))
    return out


def fer_files(fer_dir: Path, split: str, label: str, count: int) -> list[Path]:
    return sorted((fer_dir / split / label).glob("*.jpg"))[:count]


def detectable_faces(
    fer_dir: Path, count: int, side: int = 150, detector: str | None = None
) -> list[Path]:
    """The first `count` FER validation faces (happy and sad alternately) that `detector`
    (default: the default detector) finds when pasted alone at `side` pixels on a plain
    background."""
    from emotion_tf.faces.locate import resolve_detector

    found: list[Path] = []
    candidates = [
        p
        for pair in zip(
            fer_files(fer_dir, "validation", "happy", 60),
            fer_files(fer_dir, "validation", "sad", 60),
        )
        for p in pair
    ]
    for path in candidates:
        canvas = paste(
            Image.new("RGB", (300, 300), (128, 150, 170)), [path], [FaceBox(75, 75, side, side)]
        )
        boxes = resolve_detector(detector).detect(np.asarray(canvas))
        if len(boxes) == 1 and boxes[0].iou(FaceBox(75, 75, side, side)) > 0.5:
            found.append(path)
        if len(found) == count:
            break
    return found


_RUNS: dict[str, Any] = {}


def fer_run(tmp_path_factory: Any, fer_dir: Path) -> Any:
    """A tiny 48 px grayscale AlexNet trained for a few epochs on 200 FER2013 images; trained
    once per test session and shared (its predictions vary, unlike an untrained model's)."""
    if "fer" in _RUNS:
        return _RUNS["fer"]
    from emotion_tf.config import load_config
    from emotion_tf.train.trainer import train
    from tests.conftest import tiny_overrides

    root = tmp_path_factory.mktemp("fer_small")
    data = root / "data"
    for split, count in (("train", 80), ("validation", 20)):
        for label in ("happy", "sad"):
            folder = data / split / label
            folder.mkdir(parents=True)
            for path in fer_files(fer_dir, split, label, count):
                os.symlink(path, folder / path.name)
    overrides = tiny_overrides(
        root / "run",
        data,
        **{
            "model.input_size": 48,
            "model.channels": 1,
            "model.width": 0.125,
            "train.epochs": 4,
            "data.batch_size": 16,
            "train.strategy": "default",
        },
    )
    _RUNS["fer"] = train(load_config(None, overrides))
    return _RUNS["fer"]
