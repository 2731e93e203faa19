"""Find class folders and image files, and scan them for files that cannot be decoded."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import os
from pathlib import Path

from emotion_tf.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
SPLITS = ("train", "validation")

log = logging.getLogger(__name__)


@dataclasses.dataclass
class LabelledFiles:
    """Image paths of one split with their class indices."""

    class_names: list[str]
    paths: list[str]
    labels: list[int]
    ignored: list[str] = dataclasses.field(default_factory=list)  # not image extensions

    def counts(self) -> dict[str, int]:
        result = dict.fromkeys(self.class_names, 0)
        for label in self.labels:
            result[self.class_names[label]] += 1
        return result


@dataclasses.dataclass
class BadFile:
    path: str
    reason: str


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def discover_classes(split_dir: Path) -> list[str]:
    """Sorted names of the class sub-folders of `split_dir`."""
    if not split_dir.is_dir():
        raise DataError(f"data folder not found: {split_dir}")
    names = sorted(
        entry.name for entry in os.scandir(split_dir)
        if entry.is_dir() and not entry.name.startswith(".")
    )
    if not names:
        raise DataError(f"no class sub-folders in {split_dir} (expected e.g. happy/ and sad/)")
    if len(names) < 2:
        raise DataError(f"only one class folder in {split_dir} ({names[0]}/): need at least two")
    return names


def list_images(folder: Path) -> tuple[list[str], list[str]]:
    """All image files under `folder` (recursive, sorted) and the non-image files found."""
    images: list[str] = []
    others: list[str] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            (images if is_image_name(name) else others).append(os.path.join(root, name))
    return images, others


def list_split(split_dir: Path, class_names: list[str] | None = None) -> LabelledFiles:
    """List the images of one split; class names default to its sorted sub-folders."""
    split_dir = Path(split_dir)
    names = class_names if class_names is not None else discover_classes(split_dir)
    paths: list[str] = []
    labels: list[int] = []
    ignored: list[str] = []
    for index, name in enumerate(names):
        images, others = list_images(split_dir / name)
        if not images:
            raise DataError(f"class folder has no images: {split_dir / name}")
        paths.extend(images)
        labels.extend([index] * len(images))
        ignored.extend(others)
    if ignored:
        log.warning("%d non-image file(s) ignored in %s, e.g. %s", len(ignored), split_dir,
                    ignored[0])
    return LabelledFiles(list(names), paths, labels, ignored)


def load_splits(data_dir: Path) -> dict[str, LabelledFiles]:
    """List train and validation; their class folders must match."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data dir not found: {data_dir}")
    classes = {split: discover_classes(data_dir / split) for split in SPLITS}
    if classes["train"] != classes["validation"]:
        only_train = sorted(set(classes["train"]) - set(classes["validation"]))
        only_val = sorted(set(classes["validation"]) - set(classes["train"]))
        raise DataError(
            f"class folders differ between {data_dir / 'train'} and {data_dir / 'validation'}: "
            f"only in train: {only_train or '-'}; only in validation: {only_val or '-'}"
        )
    return {split: list_split(data_dir / split, classes[split]) for split in SPLITS}


def check_image(path: str, max_pixels: int) -> str | None:
    """Return why `path` cannot be used as an image, or None if it decodes."""
    import tensorflow as tf
    from PIL import Image, UnidentifiedImageError

    from emotion_tf.preprocess import decode_image

    try:
        with Image.open(path) as probe:
            width, height = probe.size
    except (UnidentifiedImageError, Image.DecompressionBombError) as err:
        return f"not a readable image ({type(err).__name__})"
    except OSError as err:
        return f"cannot read: {err.strerror or err}"
    except Exception as err:  # PIL raises a zoo of errors on malformed headers
        return f"not a readable image ({type(err).__name__}: {err})"
    if width * height > max_pixels:
        return f"too large: {width}x{height} pixels exceeds data.max_pixels={max_pixels}"
    try:
        data = tf.io.read_file(path)
        decode_image(data, channels=3)
    except (tf.errors.InvalidArgumentError, tf.errors.OpError) as err:
        message = (err.message or "").splitlines()[0][:120]
        return f"cannot be decoded ({message})"
    return None


def scan_images(paths: list[str], max_pixels: int, workers: int = 4) -> list[BadFile]:
    """Decode every file once (in threads; TF releases the GIL) and return those that fail."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # we enforce max_pixels ourselves, with a clearer message
    bad: list[BadFile] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for path, reason in zip(paths, pool.map(lambda p: check_image(p, max_pixels), paths)):
            if reason is not None:
                bad.append(BadFile(path, reason))
    return bad


def drop_bad(files: LabelledFiles, bad: list[BadFile]) -> LabelledFiles:
    """The same split without the files listed in `bad`."""
    skip = {b.path for b in bad}
    kept = [(p, y) for p, y in zip(files.paths, files.labels) if p not in skip]
    result = LabelledFiles(files.class_names, [p for p, _ in kept], [y for _, y in kept],
                           files.ignored)
    for index, count in enumerate(result.counts().values()):
        if count == 0:
            raise DataError(f"no decodable images left for class '{files.class_names[index]}'")
    return result
