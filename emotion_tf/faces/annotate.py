"""Draw face boxes with labels and confidences on a copy of a photo."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Colour per class index (colour-blind friendly: Okabe-Ito).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (0, 114, 178),
    (213, 94, 0),
    (204, 121, 167),
)
NO_FACE_COLOUR = (200, 30, 30)


@dataclasses.dataclass(frozen=True)
class Annotation:
    """One box to draw: [x, y, w, h], its caption, and the class index that picks the colour."""

    box: list[int]
    caption: str
    class_index: int = 0


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow built without FreeType: fixed bitmap font
        return ImageFont.load_default()


def annotate_image(
    image: np.ndarray, annotations: list[Annotation], banner: str = ""
) -> Image.Image:
    """An RGB copy of `image` with every annotation's box and caption drawn on it.

    `banner` (e.g. "no face found") is written in the top-left corner.
    """
    picture = Image.fromarray(np.asarray(image, dtype=np.uint8).squeeze()).convert("RGB")
    draw = ImageDraw.Draw(picture)
    short = min(picture.size)
    line = max(1, round(short / 200))
    font = _font(max(10, round(short / 28)))
    for item in annotations:
        x, y, w, h = item.box
        colour = PALETTE[item.class_index % len(PALETTE)]
        draw.rectangle([x, y, x + w - 1, y + h - 1], outline=colour, width=line)
        left, top, right, bottom = draw.textbbox((0, 0), item.caption, font=font)
        text_w, text_h = right - left, bottom - top
        pad = max(1, line)
        label_y = y - text_h - 2 * pad if y - text_h - 2 * pad >= 0 else y + h
        label_y = min(label_y, picture.height - text_h - 2 * pad)
        draw.rectangle([x, label_y, x + text_w + 2 * pad, label_y + text_h + 2 * pad], fill=colour)
        draw.text((x + pad - left, label_y + pad - top), item.caption, fill=(0, 0, 0), font=font)
    if banner:
        left, top, right, bottom = draw.textbbox((0, 0), banner, font=font)
        draw.rectangle([0, 0, right - left + 6, bottom - top + 6], fill=NO_FACE_COLOUR)
        draw.text((3 - left, 3 - top), banner, fill=(255, 255, 255), font=font)
    return picture


def encode_like(picture: Image.Image, source_path: str) -> tuple[bytes, str]:
    """Encoded bytes and file suffix: JPEG for JPEG sources (photos), PNG otherwise."""
    buffer = io.BytesIO()
    if Path(source_path).suffix.lower() in (".jpg", ".jpeg"):
        picture.save(buffer, format="JPEG", quality=90, subsampling=0)  # crisp coloured lines
        return buffer.getvalue(), ".jpg"
    picture.save(buffer, format="PNG")
    return buffer.getvalue(), ".png"
