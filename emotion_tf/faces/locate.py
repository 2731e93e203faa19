"""Decide, per image, which regions the classifier sees: detected faces, or the image itself."""

from __future__ import annotations

import dataclasses
from typing import Literal, Protocol

import numpy as np

from emotion_tf.errors import ConfigError
from emotion_tf.faces.detector import FaceBox

FaceMode = Literal["auto", "detect", "none"]
Fallback = Literal["none", "whole-image", "second-look"]
FACE_MODES: tuple[str, ...] = ("auto", "detect", "none")
# second-look: BlazeFace looks again with a lower bar, then the whole image
# (emotion_tf.faces.second_look).
FALLBACKS: tuple[str, ...] = ("none", "whole-image", "second-look")

# `auto` treats an image as a ready-made face crop when the detector finds no face in it and it
# is at most this elongated and this many pixels on its longer side (FER2013 crops are 48x48,
# where the detector often finds nothing). Any face found is cropped with the detector's
# framing, even one that fills the image: on the 427 validation photos of web-happy-sad and
# web-happy-sad-more (packaged model) 80.3% against 77.3% for the earlier rule that also read a
# large single face whole (256 px: 79.4%); FER2013 validation 93.5% against 93.4%
# (docs/lab/web-photos-both.md, "Routes").
CROP_MAX_SIDE = 128
CROP_MAX_ASPECT = 1.5

# How a region was chosen; the value of the `source` column.
SOURCE_DETECTOR = "detector"
SOURCE_CROP = "crop"  # auto: the image already looks like a face crop
SOURCE_FALLBACK = "whole-image"  # no face found, --fallback whole-image (or second-look)
SOURCE_SECOND_LOOK = "second-look"  # no face found; a fainter one, --fallback second-look
# ... and as reports name it (evaluate's accuracy by how each file was read).
SOURCE_NAMES = {
    SOURCE_DETECTOR: "faces found",
    SOURCE_CROP: "a face crop",
    SOURCE_SECOND_LOOK: "second look",
    SOURCE_FALLBACK: "whole image",
}


class Detector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[FaceBox]: ...


@dataclasses.dataclass(frozen=True)
class FaceRegion:
    """One region to classify: its box in image pixels and how it was chosen."""

    box: FaceBox
    source: str

    @property
    def is_whole_image(self) -> bool:
        return self.source in (SOURCE_CROP, SOURCE_FALLBACK)


def default_detector() -> Detector:
    """The shared default detector (`emotion_tf.faces.detectors.DEFAULT_DETECTOR`)."""
    from emotion_tf.faces.detectors import get_detector

    return get_detector()


def resolve_detector(detector: Detector | str | None) -> Detector:
    """A detector object from an object, a name (`--detector`) or None (the default)."""
    if detector is None:
        return default_detector()
    if isinstance(detector, str):
        from emotion_tf.faces.detectors import get_detector

        return get_detector(detector)
    return detector


def check_mode(mode: str, fallback: str = "none") -> None:
    if mode not in FACE_MODES:
        raise ConfigError(f"faces must be one of {list(FACE_MODES)}. Received: faces={mode!r}")
    if fallback not in FALLBACKS:
        raise ConfigError(
            f"fallback must be one of {list(FALLBACKS)}. Received: fallback={fallback!r}"
        )


def whole_image_box(image: np.ndarray) -> FaceBox:
    height, width = image.shape[:2]
    return FaceBox(0, 0, int(width), int(height), None)


def looks_like_crop(shape: tuple[int, ...], boxes: list[FaceBox]) -> bool:
    """True when an image of `shape` in which the detector found `boxes` is already a face crop."""
    longest, shortest = max(shape[:2]), min(shape[:2])
    if boxes or shortest < 1:
        return False
    return longest <= CROP_MAX_SIDE and longest / shortest <= CROP_MAX_ASPECT


def locate_faces(
    image: np.ndarray,
    mode: FaceMode = "auto",
    fallback: Fallback = "none",
    detector: Detector | str | None = None,
) -> list[FaceRegion]:
    """Regions of `image` to classify, largest face first; [] means no face was found.

    `none` always returns the whole image; `detect` returns the detector's faces; `auto`
    returns the whole image when it looks like a face crop (see `looks_like_crop`), else the
    detector's faces. Where no face is found, `fallback="whole-image"` returns the whole image,
    and `"second-look"` the faces BlazeFace finds at a lower bar, else the whole image.
    """
    check_mode(mode, fallback)
    if mode == "none":
        return [FaceRegion(whole_image_box(image), SOURCE_CROP)]
    finder = resolve_detector(detector)
    boxes = finder.detect(image)
    if mode == "auto" and looks_like_crop(image.shape, boxes):
        return [FaceRegion(whole_image_box(image), SOURCE_CROP)]
    if boxes:
        return [FaceRegion(box, SOURCE_DETECTOR) for box in boxes]
    if fallback == "second-look":
        from emotion_tf.faces.second_look import second_look

        faint = second_look(image, finder)
        if faint:
            return [FaceRegion(box, SOURCE_SECOND_LOOK) for box in faint]
    if fallback != "none":
        return [FaceRegion(whole_image_box(image), SOURCE_FALLBACK)]
    return []
