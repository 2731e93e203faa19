"""Measure how each detector's boxes and landmarks sit on FER2013 crops (the framing constants
of emotion_tf/faces/crop.py).

Each FER2013 validation crop (48 px) is scaled to 144 px and padded by 72 px of repeated edge
pixels, so the face sits in the middle of a 288 px image where its crop is known exactly. For
every detector this prints, relative to the crop side: the box centre offset, box width and
height, and (with landmarks) the eyes' midpoint, the mouth, the eye distance and the distance
from the eyes' midpoint to the mouth, as 10th / 50th / 90th percentiles.

    python -m benchmarks.face_framing --fer ../shared/data/fer2013-happy-sad --per-class 100
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from PIL import Image

SIDE, PAD = 144, 72


def measure(detector, images: list[np.ndarray]) -> tuple[list[dict[str, float]], float]:
    rows, started = [], time.process_time()
    for image in images:
        boxes = detector.detect(image)
        if not boxes:
            continue
        box = boxes[0]

        def rel(x: float, y: float) -> tuple[float, float]:
            return (x - PAD - SIDE / 2) / SIDE, (y - PAD - SIDE / 2) / SIDE

        cx, cy = rel(box.x + box.w / 2, box.y + box.h / 2)
        row = {"cx": cx, "cy": cy, "w": box.w / SIDE, "h": box.h / SIDE}
        points = box.landmarks or {}
        if "left_eye" in points:
            left, right = np.array(points["left_eye"]), np.array(points["right_eye"])
            if "mouth" in points:
                mouth = np.array(points["mouth"])
            else:
                mouth = (np.array(points["mouth_left"]) + np.array(points["mouth_right"])) / 2
            eyes = (left + right) / 2
            row["eyes_x"], row["eyes_y"] = rel(*eyes)
            row["mouth_x"], row["mouth_y"] = rel(*mouth)
            row["eye_distance"] = float(np.linalg.norm(right - left)) / SIDE
            row["eyes_to_mouth"] = float(np.linalg.norm(mouth - eyes)) / SIDE
        rows.append(row)
    return rows, (time.process_time() - started) / max(1, len(images))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fer", type=Path, required=True, help="fer2013-happy-sad folder")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--detectors", default="haar,mtcnn,blazeface")
    args = parser.parse_args()
    from emotion_tf.faces.detectors import get_detector

    files = []
    for label in ("happy", "sad"):
        files += sorted((args.fer / "validation" / label).glob("*.jpg"))[: args.per_class]
    images = []
    for path in files:
        with Image.open(path) as face:
            pixels = np.asarray(face.convert("L").resize((SIDE, SIDE), Image.BICUBIC))
        images.append(np.repeat(np.pad(pixels, PAD, mode="edge")[..., None], 3, axis=-1))
    for name in args.detectors.split(","):
        rows, cpu = measure(get_detector(name), images)
        print(f"{name}: a face in {len(rows)} of {len(images)} crops, {cpu:.3f} CPU s each")
        for key in rows[0] if rows else []:
            values = [row[key] for row in rows if key in row]
            p10, p50, p90 = np.percentile(values, [10, 50, 90])
            print(f"  {key:<14} median {p50:+.3f}   p10 {p10:+.3f}   p90 {p90:+.3f}")


if __name__ == "__main__":
    main()
