"""Files and folders named by a door -> `PhotoSource`s, one per file, in order.

Folders are walked to any depth (`emotion_tf.data.files.list_images`); a folder or file that
cannot be read becomes a source with its `error`, so it is answered with an error row and
counted, never dropped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from emotion_tf.data.files import IMAGE_EXTENSIONS, list_images, read_upright_image
from emotion_tf.pipeline.decode import PhotoSource
from emotion_tf.pipeline.options import DEFAULT_MAX_PIXELS

NO_IMAGES = "folder has no image files (" + " ".join(IMAGE_EXTENSIONS) + ")"


def expand_inputs(inputs: Iterable[str | Path]) -> Iterator[tuple[str, str | None]]:
    """(path, error) for every file named, or found under a named folder (any depth)."""
    for item in inputs:
        item = str(item)
        if os.path.isdir(item):
            unreadable: list[tuple[str, str]] = []
            images, _ = list_images(Path(item), unreadable)
            if not images and not unreadable:
                yield item, NO_IMAGES
            for path in images:
                yield path, None
            yield from unreadable
        elif os.path.isfile(item):
            yield item, None
        else:
            yield item, "no such file or folder"


def read_source(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> PhotoSource:
    """One file's bytes, checked (size, format, pixel budget) and turned upright by EXIF."""
    data, error = read_upright_image(path, max_pixels)
    return PhotoSource(path, data=data, error=error)


def sources_from_paths(
    inputs: Iterable[str | Path], max_pixels: int = DEFAULT_MAX_PIXELS
) -> Iterator[PhotoSource]:
    """One source per file named or found, in order; unreadable ones carry their error."""
    for path, error in expand_inputs(inputs):
        yield PhotoSource(path, error=error) if error else read_source(path, max_pixels)
