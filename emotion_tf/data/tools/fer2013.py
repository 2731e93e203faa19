"""Convert the Kaggle FER2013 CSV (`emotion,pixels,Usage`) into class-folder images.

FER2013 (Goodfellow et al., 2013) stores each 48x48 grayscale face as 2304 space-separated
pixel values. Its `Usage` column names the official split: Training, PublicTest (used here as
validation) and PrivateTest (the held-out test set).
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from emotion_tf.errors import DataError
from emotion_tf.io_utils import staged_output

log = logging.getLogger(__name__)

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
USAGE_TO_SPLIT = {"training": "train", "publictest": "validation", "privatetest": "test"}
DEFAULT_CLASSES = ("happy", "sad")
FORMATS = {"png": "PNG", "jpg": "JPEG"}
MAX_LISTED_ROWS = 20  # bad rows named one by one before the rest are only counted


@dataclasses.dataclass
class PrepareResult:
    """What `prepare_fer2013` wrote and what it left out."""

    out_dir: Path
    counts: dict[str, dict[str, int]]  # split -> class -> images written
    other_classes: int = 0  # rows of classes that were not asked for
    skipped: list[str] = dataclasses.field(default_factory=list)  # one reason per bad row

    def to_dict(self) -> dict:
        return {
            "out_dir": str(self.out_dir),
            "counts": self.counts,
            "other_classes": self.other_classes,
            "skipped_rows": len(self.skipped),
            "skipped": self.skipped,
        }


def resolve_classes(names: Iterable[str]) -> list[str]:
    """FER2013 class names from names or label numbers (`happy`, `3`), in the order given."""
    resolved: list[str] = []
    for raw in names:
        name = raw.strip().lower()
        if name.isdigit() and int(name) < len(FER_CLASSES):
            name = FER_CLASSES[int(name)]
        if name not in FER_CLASSES:
            raise DataError(
                f"unknown FER2013 class {raw!r}: expected names or numbers of "
                f"{', '.join(f'{i}={n}' for i, n in enumerate(FER_CLASSES))}"
            )
        if name not in resolved:
            resolved.append(name)
    if len(resolved) < 2:
        raise DataError(f"need at least two FER2013 classes. Received: classes={resolved}")
    return resolved


def parse_pixels(text: str) -> np.ndarray:
    """2304 (or any square number of) space-separated 0-255 values as a uint8 square image."""
    try:
        values = np.array(text.split(), dtype=np.int64)
    except ValueError as err:
        raise ValueError("pixels are not all integers") from err
    side = math.isqrt(values.size)
    if values.size == 0 or side * side != values.size:
        raise ValueError(f"{values.size} pixel values do not make a square image")
    if values.min() < 0 or values.max() > 255:
        raise ValueError("pixel values outside 0-255")
    return values.astype(np.uint8).reshape(side, side)


def _columns(fieldnames: list[str] | None, csv_path: Path) -> dict[str, str]:
    """Map `emotion`/`pixels`/`usage` to the CSV's own header names (any case, spaces)."""
    found = {name.strip().lower(): name for name in fieldnames or []}
    missing = [name for name in ("emotion", "pixels") if name not in found]
    if missing:
        raise DataError(
            f"{csv_path}: no {' or '.join(repr(m) for m in missing)} column; expected the Kaggle "
            f"FER2013 header emotion,pixels,Usage. Received: {fieldnames}"
        )
    return found


def prepare_fer2013(
    csv_path: Path,
    out_dir: Path,
    classes: Iterable[str] = DEFAULT_CLASSES,
    image_format: str = "png",
    overwrite: bool = False,
) -> PrepareResult:
    """Write the rows of `classes` as `out_dir/<split>/<class>/fer2013-<row>.<ext>` images.

    Rows without a Usage column go to train/ (split them with `emotion-tf data split`). A bad
    row is logged with its row number and skipped; the rest are still written. The output
    appears only when complete.
    """
    csv_path, out_dir = Path(csv_path), Path(out_dir)
    if image_format not in FORMATS:
        raise DataError(f"image format must be one of {sorted(FORMATS)}. Received: {image_format}")
    wanted = resolve_classes(classes)
    if not csv_path.is_file():
        raise DataError(f"CSV file not found: {csv_path}")
    from PIL import Image

    result = PrepareResult(out_dir, {})
    with staged_output(out_dir, overwrite) as staging:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = _columns(reader.fieldnames, csv_path)
            if "usage" not in columns:
                log.warning("%s has no Usage column: every row goes to train/", csv_path)
            made: set[Path] = set()
            for row_number, row in enumerate(reader, start=1):
                try:
                    split, name, image = _parse_row(row, columns)
                except ValueError as err:
                    _skip(result, f"{csv_path} row {row_number}: {err}")
                    continue
                if name not in wanted:
                    result.other_classes += 1
                    continue
                folder = staging / split / name
                if folder not in made:
                    folder.mkdir(parents=True, exist_ok=True)
                    made.add(folder)
                target = folder / f"fer2013-{row_number:05d}.{image_format}"
                options = {"quality": 95} if image_format == "jpg" else {}
                Image.fromarray(image, "L").save(target, FORMATS[image_format], **options)
                per_split = result.counts.setdefault(split, dict.fromkeys(wanted, 0))
                per_split[name] += 1
        if not result.counts:
            raise DataError(f"{csv_path}: no usable rows of classes {wanted}")
        _ensure_class_folders(staging, result.counts, wanted)
    if len(result.skipped) > MAX_LISTED_ROWS:
        log.warning("... and %d more bad row(s)", len(result.skipped) - MAX_LISTED_ROWS)
    order = {"train": 0, "validation": 1, "test": 2}
    result.counts = dict(sorted(result.counts.items(), key=lambda item: order[item[0]]))
    return result


def _parse_row(row: dict[str, str | None], columns: dict[str, str]) -> tuple[str, str, np.ndarray]:
    """(split, class name, image) of one CSV row; ValueError says what is wrong with it."""
    raw_label = (row.get(columns["emotion"]) or "").strip()
    if not raw_label.isdigit() or int(raw_label) >= len(FER_CLASSES):
        raise ValueError(f"emotion must be 0-{len(FER_CLASSES) - 1}. Received: {raw_label!r}")
    split = "train"
    if "usage" in columns:
        usage = (row.get(columns["usage"]) or "").strip()
        if usage.lower() not in USAGE_TO_SPLIT:
            raise ValueError(
                f"Usage must be Training, PublicTest or PrivateTest. Received: {usage!r}"
            )
        split = USAGE_TO_SPLIT[usage.lower()]
    image = parse_pixels(row.get(columns["pixels"]) or "")
    return split, FER_CLASSES[int(raw_label)], image


def _skip(result: PrepareResult, reason: str) -> None:
    if len(result.skipped) < MAX_LISTED_ROWS:
        log.warning("skipping %s", reason)
    result.skipped.append(reason)


def _ensure_class_folders(root: Path, counts: dict[str, dict[str, int]], wanted: list[str]) -> None:
    """Every split gets every class folder, so the splits agree on the class list."""
    for split in counts:
        for name in wanted:
            (root / split / name).mkdir(parents=True, exist_ok=True)
            if counts[split][name] == 0:
                log.warning("no %s images in %s/", name, split)
