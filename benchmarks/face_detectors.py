"""Compare offline face detectors on photos composed from FER2013 crops at known boxes.

Each test canvas (640x480, random painted background) gets 1-3 FER2013 validation faces, scaled to
48-200 px and pasted at recorded boxes; further canvases hold no face at all. For every detector
it prints recall (a detection with IoU >= 0.3 against the pasted crop), the mean IoU of matched
detections, how well the detector box grown by the crop margin reproduces the pasted crop, false
positives per canvas, and milliseconds per canvas. Synthetic schematic faces (the demo set's
drawing code) are measured the same way.

    python -m benchmarks.face_detectors --fer ../shared/data/fer2013-happy-sad
    python -m benchmarks.face_detectors --fer ... --detectors "" --named haar,haar+blazeface
    # optional reference: MediaPipe's BlazeFace .tflite files (not installable beside TF 2.21)
    python -m benchmarks.face_detectors --fer ... --blazeface-dir /tmp/mp/models
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from emotion_tf.faces.crop import square_region
from emotion_tf.faces.detector import FaceBox, HaarFaceDetector

CANVAS = (640, 480)


def background(rng: np.random.Generator) -> Image.Image:
    """A painted clutter background: gradient, rectangles, ellipses, lines, noise, blur."""
    w, h = CANVAS
    base = rng.uniform(40, 215, size=3)
    ramp = np.linspace(-40, 40, w)[None, :, None] * rng.uniform(-1, 1, size=3)
    pixels = np.clip(base + ramp + np.zeros((h, w, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(8, 30))):
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(10, 200)), y0 + int(rng.integers(10, 200))
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        elif kind == 1:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        else:
            draw.line([x0, y0, x1, y1], fill=colour, width=int(rng.integers(1, 8)))
    noise = rng.normal(0, rng.uniform(2, 12), size=(h, w, 3))
    image = Image.fromarray(np.clip(np.asarray(image) + noise, 0, 255).astype(np.uint8))
    return image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 1.5))))


def compose(
    rng: np.random.Generator, faces: list[Image.Image], sizes: tuple[int, int]
) -> tuple[np.ndarray, list[FaceBox]]:
    """Paste `faces` at random non-overlapping square boxes; return the RGB canvas and boxes."""
    image = background(rng)
    boxes: list[FaceBox] = []
    for face in faces:
        for _ in range(100):
            side = int(rng.integers(sizes[0], sizes[1] + 1))
            x = int(rng.integers(0, CANVAS[0] - side))
            y = int(rng.integers(0, CANVAS[1] - side))
            box = FaceBox(x, y, side, side)
            if all(box.iou(b) == 0 and not _touch(box, b) for b in boxes):
                break
        else:
            continue
        image.paste(face.convert("RGB").resize((side, side), Image.BICUBIC), (x, y))
        boxes.append(box)
    return np.asarray(image), boxes


def _touch(a: FaceBox, b: FaceBox, gap: int = 8) -> bool:
    return not (
        a.x + a.w + gap < b.x
        or b.x + b.w + gap < a.x
        or a.y + a.h + gap < b.y
        or b.y + b.h + gap < a.y
    )


class BlazeFace:
    """MediaPipe's BlazeFace .tflite run with TF Lite (reference only; see module docstring)."""

    def __init__(self, model_path: Path, full_range: bool, threshold: float = 0.5):
        import tensorflow as tf

        self.name = "blazeface-" + ("full" if full_range else "short")
        self.interpreter = tf.lite.Interpreter(model_path=str(model_path))
        self.interpreter.allocate_tensors()
        self.size = int(self.interpreter.get_input_details()[0]["shape"][1])
        self.threshold = threshold
        strides = [4] if full_range else [8, 16, 16, 16]
        per_cell = 1 if full_range else 2
        anchors = []
        for stride in sorted(set(strides)):
            count = strides.count(stride) * per_cell
            cells = self.size // stride
            for yy in range(cells):
                for xx in range(cells):
                    anchors += [((xx + 0.5) / cells, (yy + 0.5) / cells)] * count
        self.anchors = np.array(anchors, dtype=np.float32)

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        h, w = image.shape[:2]
        side = max(h, w)
        padded = np.zeros((side, side, 3), np.uint8)
        oy, ox = (side - h) // 2, (side - w) // 2
        padded[oy : oy + h, ox : ox + w] = image if image.ndim == 3 else image[..., None]
        small = np.asarray(Image.fromarray(padded).resize((self.size, self.size), Image.BILINEAR))
        tensor = (small.astype(np.float32) / 127.5 - 1.0)[None]
        inp = self.interpreter.get_input_details()[0]["index"]
        self.interpreter.set_tensor(inp, tensor)
        self.interpreter.invoke()
        outs = {o["name"]: o["index"] for o in self.interpreter.get_output_details()}
        keys = sorted(outs, key=lambda n: self.interpreter.get_tensor(outs[n]).shape[-1])
        scores = self.interpreter.get_tensor(outs[keys[0]])[0, :, 0]
        raw = self.interpreter.get_tensor(outs[keys[-1]])[0]
        probs = 1 / (1 + np.exp(-np.clip(scores, -100, 100)))
        keep = np.flatnonzero(probs >= self.threshold)
        cand = []
        for i in keep:
            cx = raw[i, 0] / self.size + self.anchors[i, 0]
            cy = raw[i, 1] / self.size + self.anchors[i, 1]
            bw, bh = raw[i, 2] / self.size, raw[i, 3] / self.size
            box = FaceBox(
                round((cx - bw / 2) * side - ox),
                round((cy - bh / 2) * side - oy),
                round(bw * side),
                round(bh * side),
                float(probs[i]),
            )
            cand.append(box)
        cand.sort(key=lambda b: -(b.score or 0))
        result: list[FaceBox] = []
        for box in cand:  # plain NMS at IoU 0.3
            if all(box.iou(k) < 0.3 for k in result):
                result.append(box)
        return result


SIZE_BUCKETS = ((48, 79), (80, 139), (140, 200))


def evaluate(
    detect: Callable[[np.ndarray], list[FaceBox]],
    canvases: list[tuple[np.ndarray, list[FaceBox]]],
    margins: list[float],
) -> dict[str, Any]:
    found = total = false_pos = 0
    ious, ratios, times, cpu = [], [], [], []
    crop_ious: dict[float, list[float]] = {m: [] for m in margins}
    by_size = {bucket: [0, 0] for bucket in SIZE_BUCKETS}
    for image, truth in canvases:
        started, started_cpu = time.perf_counter(), time.process_time()
        boxes = detect(image)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        used = set()
        for gt in truth:
            total += 1
            bucket = next(b for b in SIZE_BUCKETS if b[0] <= gt.w <= b[1])
            by_size[bucket][1] += 1
            best = max(range(len(boxes)), key=lambda i: boxes[i].iou(gt), default=None)
            if best is not None and best not in used and boxes[best].iou(gt) >= 0.3:
                used.add(best)
                found += 1
                by_size[bucket][0] += 1
                ious.append(boxes[best].iou(gt))
                for m in margins:
                    crop_ious[m].append(square_region(boxes[best], m).iou(gt))
                ratios.append(max(boxes[best].w, boxes[best].h) / gt.w)
        false_pos += len(boxes) - len(used)
    nan = float("nan")
    return {
        "recall": found / total if total else nan,
        "mean_iou": statistics.fmean(ious) if ious else nan,
        "crop_iou": {m: statistics.fmean(v) if v else nan for m, v in crop_ious.items()},
        "box_to_crop": statistics.median(ratios) if ratios else nan,
        "fp_per_canvas": false_pos / len(canvases),
        "ms": 1000 * statistics.median(times),
        "cpu_ms": 1000 * statistics.fmean(cpu),
        "by_size": {b: (f / t if t else nan) for b, (f, t) in by_size.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fer", type=Path, required=True, help="fer2013-happy-sad folder")
    parser.add_argument("--canvases", type=int, default=120)
    parser.add_argument("--empty", type=int, default=60, help="canvases without faces")
    parser.add_argument(
        "--detectors",
        default="default:3,default:5,alt:3,alt:5,alt2:3,alt2:4,alt2:5,alt_tree:3",
        help="Haar cascade:min_neighbors list",
    )
    parser.add_argument("--scale-factor", type=float, default=1.1)
    parser.add_argument("--margins", default="0,0.025,0.05,0.1,0.2", help="crop margins to score")
    parser.add_argument(
        "--named",
        default="",
        help="detectors by their --detector names (e.g. haar,blazeface,haar+blazeface), "
        "beside the Haar cascade list",
    )
    parser.add_argument("--blazeface-dir", type=Path, help="folder with MediaPipe .tflite files")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from emotion_tf.data.demo import draw_face

    margins = [float(m) for m in args.margins.split(",")]
    rng = np.random.default_rng(args.seed)
    pool = sorted((args.fer / "validation").glob("*/*.jpg"))
    pool = [pool[i] for i in rng.permutation(len(pool))]
    fer_sets, cursor = [], 0
    for _ in range(args.canvases):
        count = int(rng.integers(1, 4))
        faces = [Image.open(p) for p in pool[cursor : cursor + count]]
        cursor += count
        fer_sets.append(compose(rng, faces, (48, 200)))
    demo_sets = []
    for i in range(args.canvases // 2):
        count = int(rng.integers(1, 4))
        faces = [
            draw_face(rng, ("happy", "sad")[(i + k) % 2], 160, bool(rng.random() < 0.3))
            for k in range(count)
        ]
        demo_sets.append(compose(rng, faces, (64, 200)))
    empty = [(np.asarray(background(rng)), []) for _ in range(args.empty)]

    detectors: list = []
    for item in args.detectors.split(","):
        if not item:
            continue
        cascade, neighbours = item.split(":")
        detector = HaarFaceDetector(cascade, args.scale_factor, int(neighbours))
        detector.name += f"/n{neighbours}"
        detectors.append(detector)
    if args.named:
        from emotion_tf.faces.detectors import get_detector

        detectors += [get_detector(name) for name in args.named.split(",") if name]
    if args.blazeface_dir:
        for name, full in (
            ("face_detection_short_range.tflite", False),
            ("face_detection_full_range_sparse.tflite", True),
        ):
            if (args.blazeface_dir / name).is_file():
                detectors.append(BlazeFace(args.blazeface_dir / name, full))

    print(
        f"{len(fer_sets)} FER canvases ({sum(len(b) for _, b in fer_sets)} faces), "
        f"{len(demo_sets)} schematic canvases ({sum(len(b) for _, b in demo_sets)} faces), "
        f"{len(empty)} empty canvases; Haar scale factor {args.scale_factor}"
    )
    buckets = "".join(f"{f'r{lo}-{hi}':>9}" for lo, hi in SIZE_BUCKETS)
    crops = "".join(f"{f'm={m:g}':>8}" for m in margins)
    print(
        f"{'detector':<18}{'recall':>7}{buckets}{'IoU':>6}{'box/crop':>9}{'FP/canv':>8}"
        f"{'schem.':>7}{'FP/empty':>9}{'ms':>7}{'cpu ms':>7}  crop IoU{crops}"
    )
    for detector in detectors:
        fer = evaluate(detector.detect, fer_sets, margins)
        demo = evaluate(detector.detect, demo_sets, margins)
        none = evaluate(detector.detect, empty, margins)
        sizes = "".join(f"{v:>9.3f}" for v in fer["by_size"].values())
        ious = "".join(f"{v:>8.3f}" for v in fer["crop_iou"].values())
        print(
            f"{detector.name:<18}{fer['recall']:>7.3f}{sizes}{fer['mean_iou']:>6.2f}"
            f"{fer['box_to_crop']:>9.2f}{fer['fp_per_canvas']:>8.2f}{demo['recall']:>7.3f}"
            f"{none['fp_per_canvas']:>9.2f}{fer['ms']:>7.0f}{fer['cpu_ms']:>7.0f}  {'':8}{ious}",
            flush=True,
        )


if __name__ == "__main__":
    main()
