"""The face detectors by name (`--detector`, `data.detector`), each built once per process.

Every detector has `name` and `detect(image) -> list[FaceBox]`: a uint8 RGB (or gray) image in,
boxes largest first out, with scores and, where the detector gives them, landmarks.
"""

from __future__ import annotations

import functools
import threading

from emotion_tf.errors import ConfigError
from emotion_tf.faces.locate import Detector

DETECTORS: tuple[str, ...] = ("haar", "mtcnn", "blazeface")
# Chosen on web-happy-sad (docs/faces-and-reports.md, "Detectors on web photos").
DEFAULT_DETECTOR = "haar"

_lock = threading.Lock()


def check_detector(name: str) -> None:
    if name not in DETECTORS:
        raise ConfigError(f"detector must be one of {list(DETECTORS)}. Received: detector={name!r}")


def get_detector(name: str = DEFAULT_DETECTOR) -> Detector:
    """The shared detector called `name`; a one-line ConfigError when its package is missing."""
    check_detector(name)
    with _lock:  # server threads may ask at once; the first builds it
        return _build(name)


@functools.cache
def _build(name: str) -> Detector:
    if name == "mtcnn":
        from emotion_tf.faces.mtcnn_detector import MtcnnFaceDetector

        return MtcnnFaceDetector()
    if name == "blazeface":
        from emotion_tf.faces.blazeface import BlazeFaceDetector

        return BlazeFaceDetector()
    from emotion_tf.faces.detector import HaarFaceDetector

    detector = HaarFaceDetector()
    detector.name = "haar"
    return detector
