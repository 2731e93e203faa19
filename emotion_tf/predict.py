"""Predict labels for image files and folders through the SavedModel export.

`predict_paths` classifies each file as a whole (pre-cropped faces). `predict_faces` first finds
the faces in each photo (`--faces auto|detect`) and gives one row per face with its box.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from emotion_tf.data.files import list_images, read_upright_image
from emotion_tf.export import LoadedExport
from emotion_tf.faces.crop import crop_face, framing_of
from emotion_tf.faces.locate import (
    SOURCE_DETECTOR,
    SOURCE_SECOND_LOOK,
    Detector,
    FaceMode,
    FaceRegion,
    Fallback,
    check_mode,
    locate_faces,
    resolve_detector,
)
from emotion_tf.faces.photo import decode_photo
from emotion_tf.preprocess import decode_error_reason

DEFAULT_MAX_PIXELS = 50_000_000
NO_FACE = "no face found"


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


@dataclasses.dataclass
class FacePredictionRow(PredictionRow):
    """One face of an input file (or the file's "no face found" row, or its error).

    `box` is [x, y, w, h] in the upright image; `score` the detector's score (None when the
    whole image was used); `source` says how the region was chosen: "detector", "crop" (the
    image already looked like a face crop), "whole-image" (--fallback whole-image) or
    "second-look" (a fainter face, --fallback second-look).
    """

    face: int | None = None
    box: list[int] | None = None
    score: float | None = None
    source: str | None = None
    no_face: bool = False


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
    except tf.errors.InvalidArgumentError as err:
        if len(paths) == 1:
            return [
                PredictionRow(paths[0], error=f"cannot be decoded ({decode_error_reason(err)})")
            ]
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
            data, error = read_upright_image(path, max_pixels)
        pending.append((path, data, error))
        if len(pending) >= batch_size:
            yield from flush()
    yield from flush()


# ---------------------------------------------------------------------------------------------
# Faces in whole photos


def face_inputs(
    image: np.ndarray,
    size: int,
    mode: FaceMode = "auto",
    fallback: Fallback = "none",
    margin: float | None = None,
    detector: Detector | str | None = None,
    align: bool = False,
    colour: np.ndarray | None = None,
) -> tuple[list[FaceRegion], np.ndarray]:
    """The face regions of a decoded uint8 [H, W, C] image (C = the model's channels) and the
    model inputs cut from them: uint8 [faces, size, size, C], resized like training images.

    Crops are framed like FER2013 crops for the detector (or by an explicit `margin`), and with
    `align` placed from the landmarks with the eyes level. `colour`, the same photo in RGB,
    is what the detector looks at when given (a gray model's photos still have colour).
    """
    from emotion_tf.preprocess import resize_uint8

    detector = resolve_detector(detector) if mode != "none" else None
    framing = framing_of(detector) if detector is not None else None
    regions = locate_faces(image if colour is None else colour, mode, fallback, detector)
    crops = []
    for region in regions:
        pixels = (
            image
            if region.is_whole_image
            else crop_face(image, region.box, margin, framing=framing, align=align)
        )
        crops.append(resize_uint8(tf.constant(pixels), size).numpy())
    empty = np.zeros((0, size, size, image.shape[-1]), np.uint8)
    return regions, (np.stack(crops) if crops else empty)


@dataclasses.dataclass
class _Pending:
    path: str
    error: str | None = None
    regions: list[FaceRegion] = dataclasses.field(default_factory=list)
    inputs: np.ndarray | None = None
    data: bytes | None = None


ImageCallback = Callable[[str, bytes | None, list[FacePredictionRow]], None]


def predict_faces(
    model: LoadedExport,
    inputs: Iterable[str | Path],
    faces: FaceMode = "auto",
    fallback: Fallback = "none",
    batch_size: int = 64,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    margin: float | None = None,
    detector: Detector | str | None = None,
    on_image: ImageCallback | None = None,
    align: bool = False,
) -> Iterator[FacePredictionRow]:
    """Yield one row per face found in each input (in input order, largest face first).

    A photo without a face gives one row with `no_face=True` (or, with
    `fallback="whole-image"`, a prediction on the whole photo); an unreadable file gives one row
    with `error`. `on_image(path, encoded_bytes, rows)` is called once per input after its rows
    are known (used to draw annotated copies).
    """
    check_mode(faces, fallback)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    detector = resolve_detector(detector) if faces != "none" else detector
    pending: list[_Pending] = []
    queued = 0

    def flush() -> Iterator[FacePredictionRow]:
        batches = [p.inputs for p in pending if p.inputs is not None and len(p.inputs)]
        outputs: dict[str, list[Any]] = {"probabilities": [], "label": [], "confidence": []}
        if batches:
            stacked = np.concatenate(batches)
            for start in range(0, len(stacked), batch_size):
                result = model.predict_images(stacked[start : start + batch_size])
                for key in outputs:
                    outputs[key].extend(result[key])
        cursor = 0
        for item in pending:
            rows = _face_rows(item, outputs, cursor, model.class_names)
            cursor += len(item.regions)
            if on_image is not None:
                on_image(item.path, item.data, rows)
            yield from rows
        pending.clear()

    for path, error in expand_inputs(inputs):
        item = _Pending(path, error)
        if error is None:
            item.data, item.error = read_upright_image(path, max_pixels)
        if item.error is None:
            try:
                image = decode_photo(item.data, model.channels)
                colour = None
                if model.channels != 3 and faces != "none":
                    colour = decode_photo(item.data, 3)
            except tf.errors.InvalidArgumentError:
                item.error = "cannot be decoded as jpg/png/bmp/gif"
            else:
                item.regions, item.inputs = face_inputs(
                    image, model.input_size, faces, fallback, margin, detector, align, colour
                )
                queued += len(item.regions)
        pending.append(item)
        if queued >= batch_size or len(pending) >= batch_size:
            yield from flush()
            queued = 0
    yield from flush()


def _face_rows(
    item: _Pending, outputs: dict[str, list[Any]], start: int, class_names: list[str]
) -> list[FacePredictionRow]:
    if item.error is not None:
        return [FacePredictionRow(item.path, error=item.error)]
    if not item.regions:
        return [FacePredictionRow(item.path, no_face=True)]
    rows = []
    for offset, region in enumerate(item.regions):
        i = start + offset
        probs = {name: float(outputs["probabilities"][i][j]) for j, name in enumerate(class_names)}
        rows.append(
            FacePredictionRow(
                item.path,
                label=outputs["label"][i].decode(),
                confidence=float(outputs["confidence"][i]),
                probabilities=probs,
                face=offset,
                box=region.box.as_list(),
                score=region.box.score,
                source=region.source,
            )
        )
    return rows


def as_face_row(row: PredictionRow) -> FacePredictionRow:
    """A row with the face fields (null where no face was looked for): stable JSON keys."""
    return row if isinstance(row, FacePredictionRow) else FacePredictionRow(**row.to_dict())


@dataclasses.dataclass
class PhotoPredictionRow(PredictionRow):
    """One input file's answer from all its faces (`rule`), or its no-face row or error.

    `faces` is the number of faces found; `source` is "detector" (from the faces), "crop"
    (the image already looked like a face crop), "whole-image" (no face, --fallback) or
    "second-look" (the fainter faces of --fallback second-look).
    """

    faces: int = 0
    source: str | None = None
    rule: str | None = None
    no_face: bool = False


def per_photo_rows(
    rows: Iterable[FacePredictionRow], class_names: list[str], rule: str = "area"
) -> Iterator[PhotoPredictionRow]:
    """Combine each input's consecutive face rows (as `predict_faces` yields them) into one
    row per photo with `emotion_tf.faces.photo_label.photo_probabilities`."""
    from emotion_tf.faces.photo_label import check_photo_rule, photo_probabilities

    check_photo_rule(rule)
    group: list[FacePredictionRow] = []

    def combine() -> PhotoPredictionRow:
        first = group[0]
        if first.error or first.no_face:
            return PhotoPredictionRow(first.path, error=first.error, no_face=first.no_face)
        probs = photo_probabilities(
            [[row.probabilities[n] for n in class_names] for row in group],
            [row.box[2] * row.box[3] if row.box else 1 for row in group],
            rule,  # type: ignore[arg-type]
        )
        best = int(np.argmax(probs))
        detected = first.source in (SOURCE_DETECTOR, SOURCE_SECOND_LOOK)
        return PhotoPredictionRow(
            first.path,
            class_names[best],
            float(probs[best]),
            {n: float(p) for n, p in zip(class_names, probs)},
            faces=len(group) if detected else 0,
            source=first.source,
            rule=rule if detected else None,
        )

    for row in rows:
        if group and (row.path != group[0].path or row.face in (None, 0)):
            yield combine()
            group = []
        group.append(row)
    if group:
        yield combine()


def as_plain_row(row: PredictionRow) -> PredictionRow:
    """The `--faces none` form of a row (drops the face columns)."""
    return PredictionRow(row.path, row.label, row.confidence, row.probabilities, row.error)


class Annotator:
    """`on_image` callback for `predict_faces` that writes annotated copies into `out_dir`.

    Copies keep the input's file name (PNG, or JPEG for JPEG inputs); names that repeat across
    folders get `-2`, `-3`, ... Files are written atomically.
    """

    def __init__(self, out_dir: Path, class_names: list[str]):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.class_names = class_names
        self.used: set[str] = set()
        self.written: list[Path] = []

    def __call__(self, path: str, data: bytes | None, rows: list[FacePredictionRow]) -> None:
        from emotion_tf.faces.annotate import Annotation, annotate_image, encode_like
        from emotion_tf.io_utils import atomic_write_bytes

        if data is None or any(row.error for row in rows):
            return
        image = decode_photo(data, 3)
        items = [
            Annotation(
                row.box, f"{row.label} {row.confidence:.2f}", self.class_names.index(row.label)
            )
            for row in rows
            if row.box is not None and row.label is not None
        ]
        banner = NO_FACE if any(row.no_face for row in rows) else ""
        encoded, suffix = encode_like(annotate_image(image, items, banner), path)
        stem = Path(path).stem
        name, count = f"{stem}{suffix}", 1
        while name in self.used:
            count += 1
            name = f"{stem}-{count}{suffix}"
        self.used.add(name)
        target = self.out_dir / name
        atomic_write_bytes(target, encoded)
        self.written.append(target)


FACE_COLUMNS = ("path", "face", "x", "y", "w", "h", "score", "source", "label", "confidence")


def format_face_rows(rows: list[FacePredictionRow], class_names: list[str], fmt: str) -> str:
    """Face rows as a table for people, or JSON / CSV for programs."""
    if fmt == "json":
        return json.dumps([row.to_dict() for row in rows], indent=2)
    if fmt == "jsonl":
        return "\n".join(json.dumps(row.to_dict()) for row in rows)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([*FACE_COLUMNS, *class_names, "error"])
        for row in rows:
            box = row.box or ["", "", "", ""]
            probs = row.probabilities or {}
            writer.writerow(
                [
                    row.path,
                    "" if row.face is None else row.face,
                    *box,
                    "" if row.score is None else f"{row.score:g}",
                    row.source or "",
                    row.label or "",
                    "" if row.confidence is None else f"{row.confidence:.6f}",
                    *[f"{probs[n]:.6f}" if n in probs else "" for n in class_names],
                    row.error or (NO_FACE if row.no_face else ""),
                ]
            )
        return buffer.getvalue().rstrip("\n")
    width = max([len(r.path) for r in rows] + [4])
    lines = [
        f"{'path':<{width}}  {'face':>4}  {'box [x, y, w, h]':<22}{'score':>6}  "
        f"{'label':<8}{'conf':>7}  " + "  ".join(f"{n:>7}" for n in class_names)
    ]
    for row in rows:
        if row.error:
            lines.append(f"{row.path:<{width}}  ERROR: {row.error}")
            continue
        if row.no_face:
            lines.append(f"{row.path:<{width}}  {'-':>4}  {NO_FACE}")
            continue
        box = "[" + ", ".join(str(v) for v in row.box or []) + "]"
        score = "-" if row.score is None else f"{row.score:g}"
        probs = "  ".join(f"{row.probabilities[n]:>7.3f}" for n in class_names)
        lines.append(
            f"{row.path:<{width}}  {row.face:>4}  {box:<22}{score:>6}  "
            f"{row.label:<8}{row.confidence:>7.3f}  {probs}"
        )
    return "\n".join(lines)


PHOTO_COLUMNS = ("path", "faces", "source", "rule", "label", "confidence")


def format_photo_rows(rows: list[PhotoPredictionRow], class_names: list[str], fmt: str) -> str:
    """Per-photo rows as a table for people, or JSON / CSV for programs."""
    if fmt == "json":
        return json.dumps([row.to_dict() for row in rows], indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([*PHOTO_COLUMNS, *class_names, "error"])
        for row in rows:
            probs = row.probabilities or {}
            writer.writerow(
                [
                    row.path,
                    row.faces,
                    row.source or "",
                    row.rule or "",
                    row.label or "",
                    "" if row.confidence is None else f"{row.confidence:.6f}",
                    *[f"{probs[n]:.6f}" if n in probs else "" for n in class_names],
                    row.error or (NO_FACE if row.no_face else ""),
                ]
            )
        return buffer.getvalue().rstrip("\n")
    width = max([len(r.path) for r in rows] + [4])
    lines = [
        f"{'path':<{width}}  {'faces':>5}  {'source':<12}{'label':<8}{'conf':>7}  "
        + "  ".join(f"{n:>7}" for n in class_names)
    ]
    for row in rows:
        if row.error:
            lines.append(f"{row.path:<{width}}  ERROR: {row.error}")
        elif row.no_face:
            lines.append(f"{row.path:<{width}}  {0:>5}  {NO_FACE}")
        else:
            probs = "  ".join(f"{row.probabilities[n]:>7.3f}" for n in class_names)
            lines.append(
                f"{row.path:<{width}}  {row.faces:>5}  {row.source or '':<12}{row.label:<8}"
                f"{row.confidence:>7.3f}  {probs}"
            )
    return "\n".join(lines)
