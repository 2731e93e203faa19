"""Find class folders and image files, and scan them for files that cannot be used.

Paths are plain `str`; names that are not valid UTF-8 arrive from `os.walk` with surrogate
escapes and are turned back into their original bytes (`os.fsencode`) wherever TF needs them.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import io
import logging
import os
import stat
from pathlib import Path
from typing import Any

from emotion_tf.data.animation import first_frame, frames
from emotion_tf.data.orientation import read_orientation, upright_png
from emotion_tf.errors import DataError
from emotion_tf.pipeline.limits import size_problem

# The one message for bytes that no decoder of the path reads.
UNDECODABLE = "cannot be decoded as an image (jpg, png, bmp, gif, webp)"

# Every format the decode path reads (TensorFlow decodes WebP too): one list for every door.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
SPLITS = ("train", "validation")
# What TensorFlow's decode_image reads, by PIL's name for the format.
TF_DECODABLE_FORMATS = {"JPEG", "PNG", "BMP", "GIF", "WEBP"}

log = logging.getLogger(__name__)


@dataclasses.dataclass
class LabelledFiles:
    """Image paths of one split with their class indices."""

    class_names: list[str]
    paths: list[str]
    labels: list[int]
    ignored: list[str] = dataclasses.field(default_factory=list)  # not image extensions
    # EXIF orientation (1-8) per path, filled in by `scan_split`; None means all upright.
    orientations: list[int] | None = None
    # Whether each path has several frames (filled in by `scan_split`); None means none has.
    animated: list[bool] | None = None

    def counts(self) -> dict[str, int]:
        result = dict.fromkeys(self.class_names, 0)
        for label in self.labels:
            result[self.class_names[label]] += 1
        return result

    def orientation_list(self) -> list[int]:
        return list(self.orientations) if self.orientations is not None else [1] * len(self.paths)

    def animated_list(self) -> list[bool]:
        return list(self.animated) if self.animated is not None else [False] * len(self.paths)


@dataclasses.dataclass
class BadFile:
    path: str
    reason: str


@dataclasses.dataclass
class ImageInfo:
    """What the scan learned about one file: why it is unusable, or its EXIF orientation."""

    reason: str | None = None
    orientation: int = 1
    width: int = 0
    height: int = 0
    animated: bool = False  # more than one frame: readers must use `first_frame` bytes


def display_path(path: str) -> str:
    """`path` printable on any terminal: undecodable bytes of the name shown as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def discover_classes(split_dir: Path) -> list[str]:
    """Sorted names of the class sub-folders of `split_dir`."""
    if not split_dir.is_dir():
        raise DataError(f"data folder not found: {split_dir}")
    names = sorted(
        entry.name
        for entry in os.scandir(split_dir)
        if entry.is_dir() and not entry.name.startswith(".")
    )
    if not names:
        raise DataError(f"no class sub-folders in {split_dir} (expected e.g. happy/ and sad/)")
    if len(names) < 2:
        raise DataError(f"only one class folder in {split_dir} ({names[0]}/): need at least two")
    return names


def list_images(
    folder: Path, unreadable: list[tuple[str, str]] | None = None
) -> tuple[list[str], list[str]]:
    """All image files under `folder` (sorted, any depth) and the other entries found.

    The walk keeps its own stack, so a tree thousands of levels deep needs no recursion.
    Symlinked files are listed (they are read through the link); symlinked folders are not
    followed, so a link loop cannot make the walk endless: they are reported with the others.
    A folder that cannot be listed is appended to `unreadable` as (path, reason), or logged.
    """
    images: list[str] = []
    others: list[str] = []
    stack = [str(folder)]
    while stack:
        root = stack.pop()
        try:
            with os.scandir(root) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as err:
            reason = f"cannot read folder: {err.strerror or err}"
            if unreadable is None:
                log.warning("%s: %s", display_path(root), reason)
            else:
                unreadable.append((root, reason))
            continue
        folders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = os.path.join(root, entry.name)
            if entry.is_dir(follow_symlinks=False):
                folders.append(path)
            elif entry.is_symlink() and os.path.isdir(path):
                log.warning("not following symlinked folder %s", display_path(path))
                others.append(path)
            else:
                (images if is_image_name(entry.name) else others).append(path)
        stack.extend(reversed(folders))
    return sorted(images), others


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
        log.warning(
            "%d non-image file(s) ignored in %s, e.g. %s",
            len(ignored),
            split_dir,
            display_path(ignored[0]),
        )
    return LabelledFiles(list(names), paths, labels, ignored)


def split_folder(data_dir: str | Path, split: str) -> Path:
    """`data_dir/split` when `data_dir` is a data dir (train/ and validation/), else `data_dir`
    itself (a folder of class sub-folders)."""
    data_dir = Path(data_dir)
    if (data_dir / "validation").is_dir() and (data_dir / "train").is_dir():
        return data_dir / split
    return data_dir


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


def merge_splits(
    splits: dict[str, LabelledFiles], more: dict[str, LabelledFiles], more_dir: str | Path
) -> dict[str, LabelledFiles]:
    """Each split of `splits` followed by the same split of `more` (data.more_dirs); their
    class folders must match."""
    merged = {}
    for split, files in splits.items():
        other = more[split]
        if other.class_names != files.class_names:
            raise DataError(
                f"class folders of {Path(more_dir) / split} {other.class_names} differ from "
                f"data_dir's {files.class_names}"
            )
        merged[split] = LabelledFiles(
            files.class_names,
            files.paths + other.paths,
            files.labels + other.labels,
            files.ignored + other.ignored,
        )
    return merged


def file_list_hash(splits: dict[str, LabelledFiles], root: str | Path) -> str:
    """A short hash of every (split, label, path relative to `root`) for provenance.

    The same data set gives the same hash wherever it lives, as folders or as TFRecords.
    """
    digest = hashlib.sha256()
    for split, files in sorted(splits.items()):
        for path, label in zip(files.paths, files.labels):
            relative = os.path.relpath(path, root)
            digest.update(f"{split}\t{label}\t{relative}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:16]


def read_image_bytes(path: str, max_pixels: int) -> tuple[bytes | None, ImageInfo]:
    """Read `path` once and check it: (its bytes, info) or (None, info with the reason).

    Looks at the header with PIL first, so a decompression bomb (a small file that declares
    huge dimensions, or a GIF frame larger than its canvas) is refused before anything
    allocates its pixels. Animated images come back cut to their first frame
    (`emotion_tf.data.animation`), so no decoder ever sees the other frames.
    """
    try:
        status = os.stat(path)
        if not stat.S_ISREG(status.st_mode):  # a FIFO named .jpg would block a reader forever
            return None, ImageInfo("not a regular file")
        if status.st_size == 0:
            return None, ImageInfo("empty file (0 bytes)")
        if status.st_size > 8 * max_pixels + (1 << 20):
            return None, ImageInfo(
                f"too large: {status.st_size} bytes is too much for images of at most "
                f"{max_pixels} pixels (data.max_pixels)"
            )
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        return None, ImageInfo(f"cannot read: {err.strerror or err}")
    return check_image_data(data, max_pixels)


def check_image_data(data: bytes, max_pixels: int) -> tuple[bytes | None, ImageInfo]:
    """Check encoded image `data` by its header (see `read_image_bytes`): (the bytes, cut to
    their first frame, and info) or (None, info with the reason)."""
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = None  # max_pixels is enforced below, with a clearer message
    if not data:
        return None, ImageInfo("empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            image_format = probe.format or "unknown"
            animation = frames(data)
            pixels = animation.first_frame_pixels if animation else width * height
            too_large = pixels > max_pixels
            orientation = 1 if too_large else read_orientation(probe)
    except UnidentifiedImageError:
        return None, ImageInfo("not an image: content is not a known image format")
    except Exception as err:  # PIL raises a zoo of errors on malformed headers
        return None, ImageInfo(f"not a readable image ({type(err).__name__}: {err})"[:160])
    if too_large:
        return None, ImageInfo(
            f"too large: {width}x{height} pixels ({pixels} to decode) exceeds the limit of "
            f"{max_pixels} (data.max_pixels)"
        )
    problem = size_problem(width, height, max_pixels, "data.max_pixels")
    if problem is not None:
        return None, ImageInfo(problem)
    if image_format not in TF_DECODABLE_FORMATS:
        return None, ImageInfo(
            f"{image_format} content, which TensorFlow cannot decode (convert it to PNG or JPEG)"
        )
    animated = animation is not None and animation.count > 1
    if animated:
        data = first_frame(data)
    return data, ImageInfo(None, orientation, width, height, animated)


def read_first_frame(path: str | bytes) -> bytes:
    """The bytes of the file at `path` cut to their first frame (the pipeline's reader)."""
    with open(path, "rb") as handle:
        return first_frame(handle.read())


def read_checked_image(path: str, max_pixels: int) -> tuple[bytes | None, ImageInfo]:
    """Like `read_image_bytes`, and also decode the bytes once with the training decoder."""
    import tensorflow as tf

    from emotion_tf.preprocess import decode_error_reason

    data, info = read_image_bytes(path, max_pixels)
    if data is None:
        return None, info
    try:
        _training_decoder()(tf.constant(data))
    except (tf.errors.OpError, ValueError) as err:
        return None, ImageInfo(f"cannot be decoded ({decode_error_reason(err)})")
    return data, info


@functools.cache
def _training_decoder() -> Any:
    """The training decoder as one graph: a scan of thousands of files calls it once each,
    and its eager ops one by one cost about three times as much."""
    import tensorflow as tf

    from emotion_tf.preprocess import decode_image

    return tf.function(
        lambda data: decode_image(data, channels=3),
        input_signature=[tf.TensorSpec([], tf.string)],
    )


def inspect_image(path: str, max_pixels: int) -> ImageInfo:
    """Check that `path` decodes with the training decoder; report its EXIF orientation."""
    return read_checked_image(path, max_pixels)[1]


def check_image(path: str, max_pixels: int) -> str | None:
    """Return why `path` cannot be used as an image, or None if it decodes."""
    return inspect_image(path, max_pixels).reason


def _inspect_all(paths: list[str], max_pixels: int, workers: int) -> list[ImageInfo]:
    # Threads: PIL and TF release the GIL while they decode.
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda p: inspect_image(p, max_pixels), paths))


def scan_images(paths: list[str], max_pixels: int, workers: int = 4) -> list[BadFile]:
    """Decode every file once and return those that fail, with the reason."""
    infos = _inspect_all(paths, max_pixels, workers)
    return [BadFile(p, i.reason) for p, i in zip(paths, infos) if i.reason is not None]


def scan_split(
    files: LabelledFiles, max_pixels: int, workers: int = 4
) -> tuple[LabelledFiles, list[BadFile]]:
    """The usable files of a split (with their EXIF orientations) and the bad ones."""
    infos = _inspect_all(files.paths, max_pixels, workers)
    bad = [BadFile(p, i.reason) for p, i in zip(files.paths, infos) if i.reason is not None]
    scanned = dataclasses.replace(
        files,
        orientations=[i.orientation for i in infos],
        animated=[i.animated for i in infos],
    )
    return drop_bad(scanned, bad), bad


def drop_bad(files: LabelledFiles, bad: list[BadFile]) -> LabelledFiles:
    """The same split without the files listed in `bad`."""
    skip = {b.path for b in bad}
    keep = [i for i, p in enumerate(files.paths) if p not in skip]
    orientations, animated = files.orientations, files.animated
    result = LabelledFiles(
        files.class_names,
        [files.paths[i] for i in keep],
        [files.labels[i] for i in keep],
        files.ignored,
        None if orientations is None else [orientations[i] for i in keep],
        None if animated is None else [animated[i] for i in keep],
    )
    for index, count in enumerate(result.counts().values()):
        if count == 0:
            folder = os.path.dirname(files.paths[files.labels.index(index)])
            raise DataError(
                f"no usable images left in class folder {display_path(folder)} "
                f"({len(files.labels) - len(result.labels)} file(s) could not be used)"
            )
    return result


def read_upright_image(path: str, max_pixels: int) -> tuple[bytes | None, str | None]:
    """A file's bytes, checked like the training scan does, or why it cannot be used.

    A photo with an EXIF orientation is returned turned upright (as PNG), as training sees it.
    """
    return _upright(*read_image_bytes(path, max_pixels))


def upright_image_data(data: bytes, max_pixels: int) -> tuple[bytes | None, str | None]:
    """`read_upright_image` for bytes already read (a Beam worker reading object storage)."""
    return _upright(*check_image_data(data, max_pixels))


def _upright(data: bytes | None, info: ImageInfo) -> tuple[bytes | None, str | None]:
    import tensorflow as tf

    if data is None or info.orientation == 1:
        return data, info.reason
    try:
        return upright_png(data, info.orientation), None
    except tf.errors.OpError:
        return None, UNDECODABLE
