"""Turn what a Python caller hands `predict` into photo-pipeline sources, or a reason per item.

Accepted: paths of image files, folders (searched to any depth), encoded bytes, PIL images of
any mode (16-bit and float images scaled to 8 bits by their real range), and NumPy arrays
[H, W], [H, W, 1], [H, W, 3] or [H, W, 4] (RGB order, alpha dropped) of uint8, or of other
integer or float types (scaled like 16-bit images). An item that cannot be used carries its
`error`; it never stops the others.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from emotion_tf.data.files import TF_DECODABLE_FORMATS
from emotion_tf.pipeline.decode import PhotoSource
from emotion_tf.pipeline.limits import size_problem
from emotion_tf.pipeline.sources import sources_from_paths

ImageInput = Any  # str | Path | bytes | PIL.Image.Image | np.ndarray


def is_many(inputs: ImageInput) -> bool:
    """True when `inputs` stands for several images: a list/tuple or a folder."""
    if isinstance(inputs, (list, tuple)):
        return True
    return isinstance(inputs, (str, Path)) and os.path.isdir(inputs)


def load_inputs(inputs: ImageInput, max_pixels: int) -> Iterator[PhotoSource]:
    """One source per image, in order (a folder gives one per file inside it)."""
    items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    for index, item in enumerate(items):
        if isinstance(item, (str, Path)):
            yield from sources_from_paths([item], max_pixels)
            continue
        try:
            yield _from_object(item, index, max_pixels)
        except (MemoryError, ValueError, TypeError, OSError) as err:  # one bad item, not all
            yield PhotoSource(f"<{type(item).__name__} {index}>", error=_reason(err))


def _reason(err: BaseException) -> str:
    return f"cannot be used ({type(err).__name__}: {err})"[:200]


def _from_object(item: Any, index: int, max_pixels: int) -> PhotoSource:
    if isinstance(item, (bytes, bytearray, memoryview)):
        name = f"<bytes {index}>"
        data = bytes(item)
        error = check_encoded(data, max_pixels)
        return PhotoSource(name, error=error) if error else PhotoSource(name, data=data)
    if isinstance(item, np.ndarray):
        return _from_array(f"<array {index}>", item, max_pixels)
    from PIL import Image

    if isinstance(item, Image.Image):
        return _from_pil(f"<PIL image {index}>", item, max_pixels)
    return PhotoSource(
        f"<{type(item).__name__} {index}>",
        error="expected a path, a folder, encoded bytes, a PIL image or a NumPy array. "
        f"Received: {type(item).__name__}",
    )


def _from_pil(name: str, image: Any, max_pixels: int) -> PhotoSource:
    """Any Pillow mode: RGB-like modes to RGB, gray-like (1, L, LA, I, I;16, F) to 8-bit gray
    scaled by the image's real range, palette modes through their palette."""
    from PIL import ImageOps

    problem = size_problem(image.width, image.height, max_pixels)
    if problem is not None:
        return PhotoSource(name, error=problem)
    upright = ImageOps.exif_transpose(image)
    mode = upright.mode
    if mode in ("1", "L", "LA", "La"):
        return _from_array(name, np.asarray(upright.convert("L")), max_pixels)
    if mode.startswith("I") or mode == "F":
        return _from_array(name, np.asarray(upright), max_pixels)
    return _from_array(name, np.asarray(upright.convert("RGB")), max_pixels)


def to_uint8(array: np.ndarray) -> np.ndarray:
    """uint8 pixels of an integer or float array, by the range its values really use: uint8 as
    it is; 16-bit values (0-65535, as a 16-bit PNG file decodes) divided by 257; floats within
    [0, 1] times 255; any other range (min..max) stretched to 0..255."""
    if array.dtype == np.uint8:
        return array
    values = array.astype(np.float64)
    if values.size == 0:
        return values.astype(np.uint8)
    if not np.isfinite(values).all():
        raise ValueError("the array holds NaN or infinite values")
    low, high = float(values.min()), float(values.max())
    if array.dtype.kind == "b":
        return (values * 255).astype(np.uint8)
    if array.dtype.kind == "f" and low >= 0.0 and high <= 1.0:
        return np.round(values * 255.0).astype(np.uint8)
    if array.dtype.kind in "ui" and low >= 0 and high <= 255:
        return values.astype(np.uint8)
    if array.dtype.kind in "ui" and low >= 0 and high <= 65535:
        return np.round(values / 257.0).astype(np.uint8)
    if high == low:
        return np.full(array.shape, 128, np.uint8)
    return np.round((values - low) * (255.0 / (high - low))).astype(np.uint8)


def _from_array(name: str, array: np.ndarray, max_pixels: int) -> PhotoSource:
    shape_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 3, 4))
    if array.dtype.kind not in "uifb" or not shape_ok:
        return PhotoSource(
            name,
            error="expected an array [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] of numbers. "
            f"Received: {array.dtype} {list(array.shape)}",
        )
    height, width = array.shape[:2]
    problem = size_problem(width, height, max_pixels)
    if problem is not None:
        return PhotoSource(name, error=f"{problem}. Received: shape {list(array.shape)}")
    if array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]
    return PhotoSource(name, pixels=np.ascontiguousarray(to_uint8(array)))


def check_encoded(data: bytes, max_pixels: int) -> str | None:
    """Why encoded `data` cannot be used (header checked before any pixel is decoded), or None."""
    from PIL import Image, UnidentifiedImageError

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
    problem = size_problem(width, height, max_pixels)
    if problem is not None:
        return problem
    if image_format not in TF_DECODABLE_FORMATS:
        return f"{image_format} content, which TensorFlow cannot decode (convert it to PNG or JPEG)"
    return None
