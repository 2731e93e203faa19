"""Predict labels for image files and folders through the SavedModel export."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import tensorflow as tf

from emotion_tf.data.files import list_images
from emotion_tf.export import LoadedExport

DEFAULT_MAX_PIXELS = 50_000_000


@dataclasses.dataclass
class PredictionRow:
    """One input file: its prediction, or the error that stopped it."""

    path: str
    label: str | None = None
    confidence: float | None = None
    probabilities: dict[str, float] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def expand_inputs(inputs: Iterable[str | Path]) -> Iterator[tuple[str, str | None]]:
    """Yield (path, error) for every file named or found (recursively) under a named folder."""
    for item in inputs:
        item = str(item)
        if os.path.isdir(item):
            images, _ = list_images(Path(item))
            if not images:
                yield item, "folder has no image files (.jpg .jpeg .png .bmp .gif)"
            for path in images:
                yield path, None
        elif os.path.isfile(item):
            yield item, None
        else:
            yield item, "no such file or folder"


def _read(path: str, max_pixels: int) -> tuple[bytes | None, str | None]:
    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        return None, f"cannot read: {err.strerror or err}"
    if not data:
        return None, "empty file"
    try:
        Image.MAX_IMAGE_PIXELS = None  # the cap below gives a clearer message than PIL's
        with Image.open(path) as probe:
            width, height = probe.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        return None, f"not a readable image ({type(err).__name__})"
    if width * height > max_pixels:
        return None, f"too large: {width}x{height} pixels exceeds the {max_pixels} pixel cap"
    return data, None


def _rows_from_outputs(
    paths: list[str], outputs: dict[str, Any], class_names: list[str]
) -> list[PredictionRow]:
    rows = []
    for i, path in enumerate(paths):
        probs = {name: float(outputs["probabilities"][i][j]) for j, name in enumerate(class_names)}
        rows.append(
            PredictionRow(
                path, outputs["label"][i].decode(), float(outputs["confidence"][i]), probs
            )
        )
    return rows


def predict_batch(model: LoadedExport, paths: list[str], blobs: list[bytes]) -> list[PredictionRow]:
    """Predict one batch; if the batch fails to decode, retry file by file to name the bad one."""
    try:
        return _rows_from_outputs(paths, model.predict_bytes(blobs), model.class_names)
    except tf.errors.InvalidArgumentError:
        if len(paths) == 1:
            return [PredictionRow(paths[0], error="cannot be decoded as jpg/png/bmp/gif")]
    rows: list[PredictionRow] = []
    for path, blob in zip(paths, blobs):
        rows.extend(predict_batch(model, [path], [blob]))
    return rows


def predict_paths(
    model: LoadedExport,
    inputs: Iterable[str | Path],
    batch_size: int = 64,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Iterator[PredictionRow]:
    """Yield one row per input file, in input order, batching the readable ones."""
    pending: list[tuple[str, bytes | None, str | None]] = []

    def flush() -> Iterator[PredictionRow]:
        good = [(p, b) for p, b, e in pending if e is None]
        results = iter(
            predict_batch(model, [p for p, _ in good], [b for _, b in good]) if good else []
        )
        for path, _, error in pending:
            yield PredictionRow(path, error=error) if error else next(results)
        pending.clear()

    for path, error in expand_inputs(inputs):
        data = None
        if error is None:
            data, error = _read(path, max_pixels)
        pending.append((path, data, error))
        if len(pending) >= batch_size:
            yield from flush()
    yield from flush()
