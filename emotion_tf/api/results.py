"""What `EmotionModel.predict` and `predict_photo` return: small dataclasses with `to_dict()`."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class FacePrediction:
    """One face: its label, confidence, class probabilities and box [x, y, w, h].

    `source` says how the region was chosen: "detector", "crop" (the image already looked
    like a face crop, so all of it was used) or "whole-image" (fallback="whole-image"), or
    "second-look" (no face found; a fainter one found by fallback="second-look").
    `score` is the detector's confidence, 0 to 1 (None when the whole image was used).
    """

    label: str
    confidence: float
    probabilities: dict[str, float]
    box: list[int]
    score: float | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class ImagePrediction:
    """One input image: its faces (largest first; [] when none was found) or its error."""

    input: str  # the path, or "<array 0>", "<bytes 1>", "<PIL image 2>" by list position
    faces: list[FacePrediction] = dataclasses.field(default_factory=list)
    error: str | None = None
    no_face: bool = False  # nothing to read (only with fallback="none"): an answer, not an error

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class PhotoPrediction:
    """One answer for a whole photo from all its faces (the photo rule; `box` is its largest
    face), or `no_face` (nothing to read, with fallback="none"), or the `error` that stopped it.
    """

    input: str
    label: str | None = None
    confidence: float | None = None
    probabilities: dict[str, float] | None = None
    box: list[int] | None = None
    faces: int = 0  # faces read (0 when the whole image was read)
    error: str | None = None
    no_face: bool = False
    source: str | None = None  # how the photo was read (its largest region's source)
    rule: str | None = None  # the photo rule, when faces were found

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
