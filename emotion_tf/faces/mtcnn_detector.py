"""MTCNN face detector (the `mtcnn` package, whose wheel carries its weights): boxes, scores and
five landmarks (eyes, nose, mouth corners).

Zhang et al., "Joint Face Detection and Alignment using Multi-task Cascaded Convolutional
Networks", IEEE Signal Processing Letters, 2016.
"""

from __future__ import annotations

import threading

import numpy as np

from emotion_tf.errors import ConfigError
from emotion_tf.faces.detector import FaceBox, downscaled, to_rgb

# mtcnn's keypoint names: "left_eye" is the eye on the image's left, as in LANDMARKS.
_KEYPOINTS = {
    "left_eye": "left_eye",
    "right_eye": "right_eye",
    "nose": "nose",
    "mouth_left": "mouth_left",
    "mouth_right": "mouth_right",
}


class MtcnnFaceDetector:
    """`detect(image)` returns the faces of a uint8 RGB (or gray) image, largest first.

    Photos larger than `max_side` are scanned on a downscaled copy (boxes are mapped back); faces
    below `min_face_size` pixels at that scale and boxes scoring below `min_score` are dropped.
    """

    name = "mtcnn"

    def __init__(self, min_score: float = 0.9, min_face_size: int = 20, max_side: int = 1024):
        if not 0.0 <= min_score < 1.0:
            raise ConfigError(f"min_score must be in [0, 1). Received: min_score={min_score}")
        if min_face_size < 12:
            raise ConfigError(
                f"min_face_size must be >= 12 pixels. Received: min_face_size={min_face_size}"
            )
        try:
            from mtcnn import MTCNN
        except ImportError as err:
            raise ConfigError(
                "detector 'mtcnn' needs the mtcnn package: pip install mtcnn==1.0.0"
            ) from err
        self.min_score = min_score
        self.min_face_size = min_face_size
        self.max_side = max_side
        self._mtcnn = MTCNN(device="CPU:0")
        self._lock = threading.Lock()  # one MTCNN object: calls from threads take turns

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Faces in a uint8 gray or RGB image, largest first, with five landmarks each."""
        rgb, scale = downscaled(to_rgb(image), self.max_side)
        if min(rgb.shape[:2]) < 12:
            return []
        with self._lock:
            found = self._mtcnn.detect_faces(rgb, min_face_size=self.min_face_size)
        boxes = []
        for face in found:
            score = float(face["confidence"])
            x, y, w, h = (int(v) for v in face["box"])
            if score < self.min_score or w <= 0 or h <= 0:
                continue
            points = {
                ours: (float(face["keypoints"][theirs][0]), float(face["keypoints"][theirs][1]))
                for ours, theirs in _KEYPOINTS.items()
                if theirs in face.get("keypoints", {})
            }
            box = FaceBox(x, y, w, h, round(score, 4), points or None)
            boxes.append(box.scaled(1.0 / scale) if scale != 1.0 else box)
        return sorted(boxes, key=lambda b: (-b.area, b.y, b.x))
