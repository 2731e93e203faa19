"""Decode photos for face detection: the shared TF decode path, turned upright by EXIF.

Phone photos are often stored sideways with an EXIF tag saying how to turn them, and a frontal
face detector finds nothing in a sideways face. The pixels are turned upright exactly as the
training pipeline turns them (`emotion_tf.data.orientation`); boxes refer to the upright image.
"""

from __future__ import annotations

import io

import numpy as np


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation (1-8) stored in encoded image `data`; 1 when absent or unreadable."""
    from PIL import Image

    from emotion_tf.data.orientation import read_orientation

    try:
        with Image.open(io.BytesIO(data)) as probe:
            return read_orientation(probe)
    except Exception:  # an unreadable header: TF's decoder gives the real error later
        return 1


def decode_photo(data: bytes, channels: int = 3) -> np.ndarray:
    """uint8 [H, W, channels] upright pixels of encoded `data` (raises tf InvalidArgumentError).

    An animated image gives its first frame; the others are never decoded.
    """
    import tensorflow as tf

    from emotion_tf.data.animation import first_frame
    from emotion_tf.data.orientation import apply_orientation
    from emotion_tf.preprocess import decode_image

    data = first_frame(data)
    image = decode_image(tf.constant(data), channels)
    orientation = exif_orientation(data)
    if orientation != 1:
        image = apply_orientation(image, orientation)
    return image.numpy()
