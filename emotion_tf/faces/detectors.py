"""The face detectors by name (`--detector`, `data.detector`), each built once per process.

Every detector has `name` and `detect(image) -> list[FaceBox]`: a uint8 RGB (or gray) image in,
boxes largest first out, with scores and, where the detector gives them, landmarks.
"""

from __future__ import annotations

import functools
import logging
import threading

from emotion_tf.errors import ConfigError
from emotion_tf.faces.locate import Detector
from emotion_tf.faces.union import SEPARATOR, UnionDetector

log = logging.getLogger(__name__)

# "a+b": every face a or b finds, a's box where both find one (emotion_tf.faces.union).
DETECTORS: tuple[str, ...] = ("haar", "mtcnn", "blazeface", "haar+blazeface")
# Chosen on web-happy-sad and the pasted-faces benchmark (docs/lab/faces-and-reports.md, "Two
# detectors together"): 4 points over Haar in web-photo CV, 0.70 of pasted FER faces (Haar 0.62).
DEFAULT_DETECTOR = "haar+blazeface"
# Videos keep Haar: the tracker's narrowed scans are Haar's, it ranks boxes by score (Haar's hit
# counts and BlazeFace's probabilities do not mix), and docs/video.md's speeds are Haar's.
VIDEO_DEFAULT_DETECTOR = "haar"

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
    if SEPARATOR in name:
        return _build_union(name.split(SEPARATOR))
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


def _build_union(names: list[str]) -> Detector:
    """The union of `names`; a member whose package is missing is left out with a warning (a
    union of one is that detector), so the default works after a plain `pip install`."""
    members, errors = [], []
    for name in names:
        try:
            members.append(_build(name))
        except ConfigError as error:
            errors.append(error)
            log.warning("face detector %r left out of %r: %s", name, SEPARATOR.join(names), error)
    if not members:
        raise errors[-1]
    return members[0] if len(members) == 1 else UnionDetector(members)
