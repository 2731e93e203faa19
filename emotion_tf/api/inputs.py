"""Turn what a Python caller hands `predict` into named uint8 images, or a reason per item.

Accepted: paths of image files, folders (searched recursively), encoded bytes, PIL images,
and NumPy uint8 arrays [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] (RGB order, alpha dropped).
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ImageInput = Any  # str | Path | bytes | PIL.Image.Image | np.ndarray


@dataclasses.dataclass
class LoadedInput:
    """One image to classify: its name, and its pixels or why there are none."""

    name: str
    image: np.ndarray | None = None  # uint8 [H, W, channels], upright
    error: str | None = None


def is_many(inputs: ImageInput) -> bool:
    """True when `inputs` stands for several images: a list/tuple or a folder."""
    if isinstance(inputs, (list, tuple)):
        return True
    return isinstance(inputs, (str, Path)) and os.path.isdir(inputs)


def load_inputs(inputs: ImageInput, channels: int, max_pixels: int) -> Iterator[LoadedInput]:
    """One `LoadedInput` per image, in order (a folder gives one per file inside it)."""
    items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    for index, item in enumerate(items):
        if isinstance(item, (str, Path)):
            yield from _from_path(item, channels, max_pixels)
        else:
            yield _from_object(item, index, channels, max_pixels)


def _from_path(item: str | Path, channels: int, max_pixels: int) -> Iterator[LoadedInput]:
    from emotion_tf.data.files import read_upright_image
    from emotion_tf.predict import expand_inputs

    for path, error in expand_inputs([item]):
        data = None
        if error is None:
            data, error = read_upright_image(path, max_pixels)
        if error is not None:
            yield LoadedInput(path, error=error)
        else:
            yield _decoded(path, data, channels)


def _from_object(item: Any, index: int, channels: int, max_pixels: int) -> LoadedInput:
    if isinstance(item, (bytes, bytearray, memoryview)):
        name = f"<bytes {index}>"
        data = bytes(item)
        error = check_encoded(data, max_pixels)
        return LoadedInput(name, error=error) if error else _decoded(name, data, channels)
    if isinstance(item, np.ndarray):
        name = f"<array {index}>"
        return _from_array(name, item, channels, max_pixels)
    from PIL import Image, ImageOps

    if isinstance(item, Image.Image):
        name = f"<PIL image {index}>"
        if item.width * item.height > max_pixels:
            return LoadedInput(name, error=_too_large(item.width, item.height, max_pixels))
        upright = ImageOps.exif_transpose(item)
        gray = upright.mode in ("1", "L", "LA", "I", "I;16", "F")
        pixels = np.asarray(upright.convert("L" if gray else "RGB"))
        return _from_array(name, pixels, channels, max_pixels)
    return LoadedInput(
        f"<{type(item).__name__} {index}>",
        error="expected a path, a folder, encoded bytes, a PIL image or a uint8 NumPy array. "
        f"Received: {type(item).__name__}",
    )


def _from_array(name: str, array: np.ndarray, channels: int, max_pixels: int) -> LoadedInput:
    from emotion_tf.faces.crop import convert_channels

    shape_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 3, 4))
    if array.dtype != np.uint8 or not shape_ok:
        return LoadedInput(
            name,
            error="expected a uint8 array [H, W], [H, W, 1], [H, W, 3] or [H, W, 4]. "
            f"Received: {array.dtype} {list(array.shape)}",
        )
    height, width = array.shape[:2]
    if height < 1 or width < 1:
        return LoadedInput(name, error=f"empty image. Received: shape {list(array.shape)}")
    if height * width > max_pixels:
        return LoadedInput(name, error=_too_large(width, height, max_pixels))
    if array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]
    return LoadedInput(name, np.ascontiguousarray(convert_channels(array, channels)))


def _decoded(name: str, data: bytes, channels: int) -> LoadedInput:
    import tensorflow as tf

    from emotion_tf.faces.photo import decode_photo

    try:
        return LoadedInput(name, decode_photo(data, channels))
    except tf.errors.InvalidArgumentError:
        return LoadedInput(name, error="cannot be decoded as jpg/png/bmp/gif")


def check_encoded(data: bytes, max_pixels: int) -> str | None:
    """Why encoded `data` cannot be used (header checked before any pixel is decoded), or None."""
    from PIL import Image, UnidentifiedImageError

    from emotion_tf.data.files import TF_DECODABLE_FORMATS

    if not data:
        return "empty bytes"
    Image.MAX_IMAGE_PIXELS = None  # max_pixels is enforced below, with a clearer message
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            image_format = probe.format or "unknown"
    except UnidentifiedImageError:
        return "not an image: content is not a known image format"
    except Exception as err:  # PIL raises a zoo of errors on malformed headers
        return f"not a readable image ({type(err).__name__}: {err})"[:160]
    if width * height > max_pixels:
        return _too_large(width, height, max_pixels)
    if image_format not in TF_DECODABLE_FORMATS:
        return f"{image_format} content, which TensorFlow cannot decode (convert it to PNG or JPEG)"
    return None


def _too_large(width: int, height: int, max_pixels: int) -> str:
    return f"too large: {width}x{height} pixels exceeds the limit of {max_pixels} (max_pixels)"
