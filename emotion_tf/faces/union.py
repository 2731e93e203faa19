"""Several detectors as one: every face that any of them finds, each face once.

`haar+blazeface` keeps Haar's faces (framed most like FER2013 crops) and adds those only
BlazeFace finds (turned and tilted heads, dark, small and colour faces: a third of the web photos
where Haar finds no face). A later detector's box counts as a new face when its centre
lies outside every face kept so far and it overlaps none of them by IoU >= `SAME_FACE_IOU`.
Later boxes are redrawn in the first detector's geometry, so one crop framing
(`emotion_tf.faces.crop.FRAMINGS` of the first name) cuts every box as its own detector's
framing would have.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from emotion_tf.errors import ConfigError
from emotion_tf.faces.crop import Framing, detector_family, framing_of
from emotion_tf.faces.detector import FaceBox, HaarFaceDetector
from emotion_tf.faces.locate import Detector

SEPARATOR = "+"
SAME_FACE_IOU = 0.3


def reframed(box: FaceBox, source: Framing, target: Framing) -> FaceBox:
    """The square box that `target` framing crops exactly as `source` framing crops `box`."""
    side = source.scale * math.sqrt(max(1, box.w) * max(1, box.h))
    cx = box.x + box.w / 2.0
    cy = box.y + box.h / 2.0 + (source.dy - target.dy) * side
    new_side = max(1, round(side / target.scale))
    return FaceBox(
        round(cx - new_side / 2.0),
        round(cy - new_side / 2.0),
        new_side,
        new_side,
        box.score,
        box.landmarks,
    )


class UnionDetector:
    """`detect(image)`: the faces any detector in `detectors` finds, the first one's first."""

    def __init__(self, detectors: Sequence[Detector]):
        if len(detectors) < 2:
            raise ConfigError(
                f"a detector union needs two or more detectors. Received: {detectors}"
            )
        self.detectors = tuple(detectors)
        self.name = SEPARATOR.join(detector_family(str(d.name)) for d in self.detectors)
        self._framings = [framing_of(d) for d in self.detectors]

    def detect(self, image: np.ndarray, **haar_options: Any) -> list[FaceBox]:
        """Faces in a uint8 gray or RGB image, largest first, in the first detector's geometry.
        `haar_options` (`face_sizes`, `scale_factor`: a video tracker's narrower scans) go to
        the Haar members."""
        target = self._framings[0]
        kept: list[FaceBox] = []
        for detector, source in zip(self.detectors, self._framings):
            options = haar_options if isinstance(detector, HaarFaceDetector) else {}
            for box in detector.detect(image, **options):
                if source != target:
                    box = reframed(box, source, target)
                if not any(same_face(box, other) for other in kept):
                    kept.append(box)
        return sorted(kept, key=lambda b: (-b.area, b.y, b.x))


def same_face(box: FaceBox, other: FaceBox) -> bool:
    """True when `box` is centred inside `other` or overlaps it by IoU >= SAME_FACE_IOU."""
    cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0
    inside = other.x <= cx <= other.x + other.w and other.y <= cy <= other.y + other.h
    return inside or box.iou(other) >= SAME_FACE_IOU
