"""What a door hands the pipeline (`PhotoSource`) and its pixels (`Decoded`).

Encoded bytes are decoded twice by the training decode path (`emotion_tf.faces.photo`): in the
model's channels, which the model reads, and in RGB, which the detector looks at. Arrays and
PIL images (Python API, video frames) are converted the same way from their RGB or gray pixels.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from emotion_tf.data.files import UNDECODABLE
from emotion_tf.faces.crop import convert_channels
from emotion_tf.faces.photo import decode_photo


@dataclasses.dataclass
class PhotoSource:
    """One input: its name, and its encoded bytes, its pixels or why there are none."""

    name: str
    data: bytes | None = None
    pixels: np.ndarray | None = None  # uint8 [H, W], [H, W, 1] or [H, W, 3] (RGB), upright
    error: str | None = None


@dataclasses.dataclass
class Decoded:
    """A photo's pixels: what the model reads and what the detector looks at."""

    image: np.ndarray  # uint8 [H, W, model channels]
    colour: np.ndarray  # uint8 [H, W, 3] (the same array as `image` for an RGB model)


def decode_source(source: PhotoSource, channels: int) -> Decoded:
    """The pixels of `source` (which has `data` or `pixels`); raises ValueError when the
    bytes do not decode."""
    if source.pixels is not None:
        pixels = source.pixels if source.pixels.ndim == 3 else source.pixels[..., None]
        image = np.ascontiguousarray(convert_channels(pixels, channels))
        colour = image if channels == 3 else np.ascontiguousarray(convert_channels(pixels, 3))
        return Decoded(image, colour)
    assert source.data is not None
    try:
        image = decode_photo(source.data, channels)
        colour = image if channels == 3 else decode_photo(source.data, 3)
    except tf.errors.InvalidArgumentError as err:
        raise ValueError(UNDECODABLE) from err
    return Decoded(image, colour)
