"""A contact sheet of the photos a model read wrong: each whole photo with the faces it read.

For `emotion-tf evaluate DIR --mistakes FILE.png`: on web photos the numbers say how often the
model is wrong, the sheet says why (a face the detector missed, a drawing, a label that a
person would dispute).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from emotion_tf.data.files import read_upright_image
from emotion_tf.faces.annotate import Annotation, annotate_image
from emotion_tf.faces.locate import SOURCE_FALLBACK, SOURCE_SECOND_LOOK
from emotion_tf.faces.photo import decode_photo
from emotion_tf.pipeline.options import DEFAULT_MAX_PIXELS
from emotion_tf.report.plots import image_grid

THUMBNAIL_SIDE = 320  # pixels: the longer side of each photo on the sheet
COLUMNS = 4
READ_AS = {SOURCE_FALLBACK: "no face: whole image read", SOURCE_SECOND_LOOK: "second look"}


def _thumbnail(mistake: dict[str, Any], class_names: list[str]) -> np.ndarray:
    """The photo with its faces boxed (in the predicted class's colour), made small."""
    data, error = read_upright_image(mistake["path"], DEFAULT_MAX_PIXELS)
    if error is not None or data is None:
        return np.full((THUMBNAIL_SIDE // 2, THUMBNAIL_SIDE // 2, 3), 128, np.uint8)
    colour = class_names.index(mistake["predicted"])
    boxes = [Annotation(box, "", colour) for box in mistake["boxes"]]
    banner = "no face found" if mistake["source"] == SOURCE_FALLBACK else ""
    picture = annotate_image(decode_photo(data, 3), boxes, banner)
    picture.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(picture)


def _caption(mistake: dict[str, Any]) -> str:
    name = Path(mistake["path"]).name
    name = name if len(name) <= 28 else name[:25] + "..."
    read = READ_AS.get(mistake["source"] or "", "")
    verdict = f"{mistake['true']}, read {mistake['predicted']} {mistake['confidence']:.2f}"
    return "\n".join(part for part in (name, verdict, read) if part)


def mistakes_sheet(mistakes: list[dict[str, Any]], class_names: list[str]) -> bytes:
    """PNG bytes: the mistakes of `emotion_tf.evaluate.most_confident_mistakes`, surest first."""
    return image_grid(
        [_thumbnail(m, class_names) for m in mistakes],
        [_caption(m) for m in mistakes],
        "Most confident mistakes (true class, read as, confidence)",
        columns=COLUMNS,
    )
