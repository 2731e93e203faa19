"""Detectors in turn: the first detector that finds a face in a photo answers for it.

`blazeface+haar` asks BlazeFace first (turned heads, small and colour faces) and Haar only for
photos where BlazeFace finds nothing (faces that fill the frame, FER-like crops, drawn faces).
A later detector's boxes are redrawn in the first detector's geometry, so one crop framing
(`emotion_tf.faces.crop.FRAMINGS` of the first name) cuts every box as its own detector's
framing would have.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from emotion_tf.errors import ConfigError
from emotion_tf.faces.crop import Framing, framing_of
from emotion_tf.faces.detector import FaceBox
from emotion_tf.faces.locate import Detector

SEPARATOR = "+"


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
    """`detect(image)`: the faces of the first detector in `detectors` that finds any."""

    def __init__(self, detectors: Sequence[Detector]):
        if len(detectors) < 2:
            raise ConfigError(
                f"a detector union needs two or more detectors. Received: {detectors}"
            )
        self.detectors = tuple(detectors)
        self.name = SEPARATOR.join(framing_name(d) for d in self.detectors)
        self._framings = [framing_of(d) for d in self.detectors]

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Faces in a uint8 gray or RGB image, largest first, in the first detector's geometry."""
        target = self._framings[0]
        for detector, source in zip(self.detectors, self._framings):
            boxes = detector.detect(image)
            if boxes:
                if source == target:
                    return boxes
                redrawn = [reframed(box, source, target) for box in boxes]
                return sorted(redrawn, key=lambda b: (-b.area, b.y, b.x))
        return []


def framing_name(detector: object) -> str:
    """The detector family name that picks its framing ('haar' for 'haar-alt2')."""
    return str(getattr(detector, "name", "haar")).split("-")[0]
