"""The defaults of the photo pipeline, defined once for the API, every command and serve.

Each was chosen by a measurement on web photos of people (docs/photo-pipeline.md names it):
- faces "auto": find faces unless the image already looks like a face crop;
- fallback "second-look": where no face is found, BlazeFace looks again at a lower bar, then
  the whole image is read (grouped CV on web-happy-sad: 82.7% against 81.4% for the whole
  image; docs/lab/faces-and-reports.md, "A second look"). Every photo gets an answer;
- detector "haar+blazeface": every face either finds (docs/lab/faces-and-reports.md, "Two
  detectors together");
- margin None: each detector's own FER2013 framing (benchmarks/face_framing.py);
- align False and photo rule "area" (docs/lab/faces-and-reports.md);
- context 0.2: where faces were read, the whole photo's answer has this share of the photo's
  (the 427 validation photos of both web folders: +0.9 to +1.0 point for three models, FER2013
  validation unchanged; docs/lab/web-photos-both.md, "The whole photo beside its faces").
"""

from __future__ import annotations

import dataclasses

from emotion_tf.errors import ConfigError
from emotion_tf.faces.locate import Detector, FaceMode, Fallback, check_mode
from emotion_tf.faces.photo_label import DEFAULT_PHOTO_RULE, PhotoRule, check_photo_rule

# Larger images are refused before any pixel is decoded (decompression bombs).
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_FACES: FaceMode = "auto"
DEFAULT_FALLBACK: Fallback = "second-look"
DEFAULT_BATCH_SIZE = 64
DEFAULT_CONTEXT = 0.2
UNCLEAR = "unclear"  # the label of an answer below `min_confidence`
# How answers are printed: one contract for all four (emotion_tf.predict.format_rows).
OUTPUT_FORMATS = ("table", "json", "jsonl", "csv")


@dataclasses.dataclass(frozen=True)
class PhotoOptions:
    """How a photo becomes an answer; the same object drives every door."""

    faces: FaceMode = DEFAULT_FACES
    fallback: Fallback = DEFAULT_FALLBACK
    # A name (None: emotion_tf.faces.detectors.DEFAULT_DETECTOR) or a detector object.
    detector: Detector | str | None = None
    margin: float | None = None  # None: the detector's FER2013 framing
    align: bool = False
    rule: PhotoRule = DEFAULT_PHOTO_RULE
    # Where faces were read, the share of the whole photo's own answer in the photo's (0: off).
    context: float = DEFAULT_CONTEXT
    max_pixels: int = DEFAULT_MAX_PIXELS
    batch_size: int = DEFAULT_BATCH_SIZE
    # "Can't tell": a photo whose answer is less confident is labelled UNCLEAR (None: off).
    min_confidence: float | None = None

    def __post_init__(self) -> None:
        check_mode(self.faces, self.fallback)
        check_photo_rule(self.rule)
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(
                f"batch_size must be an integer >= 1. Received: batch_size={self.batch_size!r}"
            )
        if not isinstance(self.max_pixels, int) or self.max_pixels < 1:
            raise ConfigError(f"max_pixels must be >= 1. Received: max_pixels={self.max_pixels!r}")
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise ConfigError(
                f"min_confidence must be in [0, 1]. Received: {self.min_confidence!r}"
            )
        if not isinstance(self.context, (int, float)) or not 0.0 <= self.context < 1.0:
            raise ConfigError(f"context must be in [0, 1). Received: context={self.context!r}")
        if self.margin is not None and not 0.0 <= self.margin <= 2.0:
            raise ConfigError(f"margin must be in [0, 2]. Received: margin={self.margin!r}")

    def replace(self, **changes: object) -> PhotoOptions:
        """A copy with `changes`; None values keep the current setting."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


DEFAULT_OPTIONS = PhotoOptions()
