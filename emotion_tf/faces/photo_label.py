"""One answer per photo from the faces found in it (`evaluate`, `predict --per-photo`).

A photo labelled "happy" or "sad" as a whole (a folder of web photos) can show several people.
The rules, compared on web-happy-sad in docs/lab/faces-and-reports.md:
- `largest`: the largest face stands for the photo;
- `mean`: the mean of the faces' class probabilities;
- `area`: the mean weighted by each face's box area (large faces count more, crowds still vote).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from emotion_tf.errors import ConfigError

PhotoRule = Literal["largest", "mean", "area"]
PHOTO_RULES: tuple[str, ...] = ("largest", "mean", "area")
# Chosen by 5-fold cross-validation on web-happy-sad train + validation (benchmarks/web_photos.py).
DEFAULT_PHOTO_RULE: PhotoRule = "area"


def check_photo_rule(rule: str) -> None:
    if rule not in PHOTO_RULES:
        raise ConfigError(f"photo rule must be one of {list(PHOTO_RULES)}. Received: {rule!r}")


def photo_probabilities(
    probabilities: Sequence[Sequence[float]] | np.ndarray,
    areas: Sequence[float],
    rule: PhotoRule = DEFAULT_PHOTO_RULE,
) -> np.ndarray:
    """The photo's class probabilities from its faces' probabilities [faces, classes] and box
    areas (the faces in any order)."""
    check_photo_rule(rule)
    probs = np.asarray(probabilities, dtype=np.float64)
    weights = np.asarray(areas, dtype=np.float64)
    if probs.ndim != 2 or len(probs) == 0 or len(weights) != len(probs):
        raise ValueError(
            f"need [faces, classes] probabilities and one area per face. Received: "
            f"{probs.shape} and {weights.shape}"
        )
    if rule == "largest":
        return probs[int(np.argmax(weights))]
    if rule == "area" and weights.sum() > 0:
        return (probs * weights[:, None]).sum(axis=0) / weights.sum()
    return probs.mean(axis=0)
