"""One memory budget for every image a door accepts (files, bytes, arrays, PIL images, video
frames): checked on the declared size, before any pixel is decoded or allocated.

The path allocates about 4 bytes per pixel (an RGB copy for the detector and the model's own
channels); the detectors scale an image down before they pad it, so no buffer grows with the
square of the longer side. An image far more elongated than any photo is refused: it is
either an attack or not a photo of people.
"""

from __future__ import annotations

# The longest side may be at most this many times the shorter one (panoramas are 2-8:1).
MAX_ASPECT = 20
# The longest one server request may keep the photo pipeline busy (checked between photos).
DEFAULT_MAX_REQUEST_S = 30.0
# Faces read per image: a crowd photo past this is answered from its largest faces.
MAX_FACES_PER_IMAGE = 64


def size_problem(
    width: int, height: int, max_pixels: int, limit_name: str = "max_pixels"
) -> str | None:
    """Why an image of `width` x `height` is refused, or None when it fits the budget."""
    if width < 1 or height < 1:
        return f"empty image: {width}x{height} pixels"
    if width * height > max_pixels:
        return (
            f"too large: {width}x{height} pixels exceeds the limit of {max_pixels} ({limit_name})"
        )
    if max(width, height) > MAX_ASPECT * min(width, height):
        return (
            f"extreme aspect ratio: {width}x{height} pixels is more elongated than "
            f"{MAX_ASPECT}:1 (not a photo)"
        )
    return None
