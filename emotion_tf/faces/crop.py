"""Cut square face crops around detector boxes, framed like the training crops."""

from __future__ import annotations

import numpy as np

from emotion_tf.errors import ConfigError
from emotion_tf.faces.detector import FaceBox

# A FER2013 crop is about 1.05 times the side of the Haar box found in it, centred on the same
# point (median over 194 faces, docs/faces-and-reports.md): this margin on each side makes crops
# of detected faces framed like the FER2013 training crops.
DEFAULT_MARGIN = 0.025


def square_region(box: FaceBox, margin: float) -> FaceBox:
    """The square around `box`'s centre whose side is the longer box side times (1 + 2 margin).

    May reach outside the image; `crop_face` pads what lies outside.
    """
    if not 0.0 <= margin <= 2.0:
        raise ConfigError(f"face margin must be in [0, 2]. Received: margin={margin}")
    side = max(1, round(max(box.w, box.h) * (1.0 + 2.0 * margin)))
    cx = box.x + box.w / 2.0
    cy = box.y + box.h / 2.0
    return FaceBox(round(cx - side / 2.0), round(cy - side / 2.0), side, side, box.score)


def convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """uint8 [H, W, channels] from a gray or RGB image, converted exactly as training's decode
    path converts (TF's gray <-> RGB ops)."""
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3. Received: channels={channels}")
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == channels:
        return image
    if channels == 3:
        return np.repeat(image[..., :1], 3, axis=-1)
    import tensorflow as tf

    return tf.image.rgb_to_grayscale(tf.constant(image[..., :3])).numpy()


def crop_face(
    image: np.ndarray,
    box: FaceBox,
    margin: float = DEFAULT_MARGIN,
    channels: int | None = None,
) -> np.ndarray:
    """A square uint8 [S, S, C] crop around `box`, padded by edge replication where it leaves
    the image, converted to `channels` (default: the image's own)."""
    if image.ndim == 2:
        image = image[..., None]
    region = square_region(box, margin)
    height, width = image.shape[:2]
    x0, y0 = region.x, region.y
    x1, y1 = x0 + region.w, y0 + region.h
    pad = (
        (max(0, -y0), max(0, y1 - height)),
        (max(0, -x0), max(0, x1 - width)),
        (0, 0),
    )
    inside = image[max(0, y0) : max(0, min(y1, height)), max(0, x0) : max(0, min(x1, width))]
    if inside.size == 0:
        raise ConfigError(f"face box {box.as_list()} lies outside the {width}x{height} image")
    crop = np.pad(inside, pad, mode="edge") if any(p for pair in pad for p in pair) else inside
    crop = np.ascontiguousarray(crop)
    return convert_channels(crop, channels) if channels else crop
