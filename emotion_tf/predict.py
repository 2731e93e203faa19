"""The command line's face of the photo pipeline: rows for people and programs.

`predict_photos` runs `emotion_tf.pipeline` over files and folders; `face_rows` and
`photo_row` turn each answer into the rows every format prints (one output contract for
table, csv, json and jsonl: the same fields, documented in docs/photo-pipeline.md).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from emotion_tf.faces.photo import decode_photo
from emotion_tf.pipeline.options import DEFAULT_OPTIONS, PhotoOptions
from emotion_tf.pipeline.run import NO_FACE, PhotoAnswer, PhotoPipeline
from emotion_tf.pipeline.sources import sources_from_paths
from emotion_tf.predictors import Predictor


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
    """One face of an input file (or the file's no-face row, or its error).

    `box` is [x, y, w, h] in the upright image; `score` the detector's confidence from 0 to 1
    (None when the whole image was used); `source` says how the region was chosen: "detector",
    "crop" (the image already looked like a face crop), "whole-image" (no face; the fallback)
    or "second-look" (a fainter face, the default fallback). `no_face` marks a photo with
    nothing to read (only with `--fallback none`); it is an answer, not an error.
    """

    face: int | None = None
    box: list[int] | None = None
    score: float | None = None
    source: str | None = None
    no_face: bool = False


@dataclasses.dataclass
class PhotoPredictionRow(PredictionRow):
    """One input file's answer from all its faces (`rule`), or its no-face row or error.

    `faces` is the number of faces read (0 when the whole image was read); `source` is how the
    photo was read (its largest region's source).
    """

    faces: int = 0
    source: str | None = None
    rule: str | None = None
    no_face: bool = False


ImageCallback = Callable[[str, bytes | None, PhotoAnswer], None]


def predict_photos(
    model: Predictor,
    inputs: Iterable[str | Path],
    options: PhotoOptions = DEFAULT_OPTIONS,
    on_image: ImageCallback | None = None,
) -> Iterator[PhotoAnswer]:
    """One answer per file named or found under a named folder, in order.

    `on_image(path, encoded_bytes, answer)` is called once per input after its answer is
    known (used to draw annotated copies).
    """
    pipeline = PhotoPipeline(model, options)
    sources: dict[str, bytes | None] = {}

    def remembered() -> Iterator[Any]:
        for source in sources_from_paths(inputs, options.max_pixels):
            if on_image is not None:
                sources[source.name] = source.data
            yield source

    for answer in pipeline.run(remembered()):
        if on_image is not None:
            on_image(answer.name, sources.pop(answer.name, None), answer)
        yield answer


def face_rows(answer: PhotoAnswer) -> list[FacePredictionRow]:
    """An answer's rows, one per face read (largest first), or its one no-face / error row."""
    if answer.error is not None:
        return [FacePredictionRow(answer.name, error=answer.error)]
    if answer.no_face:
        return [FacePredictionRow(answer.name, no_face=True)]
    return [
        FacePredictionRow(
            answer.name,
            face.label,
            face.confidence,
            face.probabilities,
            face=index,
            box=face.box,
            score=face.score,
            source=face.source,
        )
        for index, face in enumerate(answer.faces)
    ]


def photo_row(answer: PhotoAnswer) -> PhotoPredictionRow:
    """An answer's one row per photo."""
    return PhotoPredictionRow(
        answer.name,
        answer.label,
        answer.confidence,
        answer.probabilities,
        answer.error,
        faces=answer.face_count,
        source=answer.source,
        rule=answer.rule,
        no_face=answer.no_face,
    )


def predict_faces(
    model: Predictor,
    inputs: Iterable[str | Path],
    faces: str | None = None,
    options: PhotoOptions | None = None,
    on_image: ImageCallback | None = None,
    **changes: Any,
) -> Iterator[FacePredictionRow]:
    """One row per face found in each input, in input order (largest face first); `faces`
    and `changes` change fields of `options` (default: the pipeline's defaults)."""
    chosen = (options or DEFAULT_OPTIONS).replace(faces=faces, **changes)
    for answer in predict_photos(model, inputs, chosen, on_image):
        yield from face_rows(answer)


def predict_paths(
    model: Predictor,
    inputs: Iterable[str | Path],
    options: PhotoOptions = DEFAULT_OPTIONS,
    batch_size: int | None = None,
) -> Iterator[PhotoPredictionRow]:
    """One row per input, each image read whole (pre-cropped faces: `faces="none"`)."""
    whole = options.replace(faces="none", batch_size=batch_size)
    for answer in predict_photos(model, inputs, whole):
        yield photo_row(answer)


class Annotator:
    """`on_image` callback for `predict_photos` that writes annotated copies into `out_dir`.

    Copies keep the input's file name (PNG, or JPEG for JPEG inputs); names that repeat across
    folders get `-2`, `-3`, ... Files are written atomically.
    """

    def __init__(self, out_dir: Path, class_names: list[str]):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.class_names = class_names
        self.used: set[str] = set()
        self.written: list[Path] = []

    def __call__(self, path: str, data: bytes | None, answer: PhotoAnswer) -> None:
        from emotion_tf.faces.annotate import Annotation, annotate_image, encode_like
        from emotion_tf.io_utils import atomic_write_bytes

        if data is None or answer.error is not None:
            return
        image = decode_photo(data, 3)
        items = [
            Annotation(
                face.box,
                f"{face.label} {face.confidence:.2f}",
                max(
                    range(len(self.class_names)),
                    key=lambda i: face.probabilities[self.class_names[i]],
                ),
            )
            for face in answer.faces
        ]
        banner = NO_FACE if answer.no_face else ""
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
PHOTO_COLUMNS = ("path", "faces", "source", "rule", "label", "confidence")


def _number(value: float | None, digits: int = 6) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _csv_cells(row: PredictionRow) -> list[Any]:
    if isinstance(row, FacePredictionRow):
        box = row.box or ["", "", "", ""]
        return [
            row.path,
            "" if row.face is None else row.face,
            *box,
            _number(row.score, 4),
            row.source or "",
        ]
    assert isinstance(row, PhotoPredictionRow)
    return [row.path, row.faces, row.source or "", row.rule or ""]


def format_rows(rows: list[Any], class_names: list[str], fmt: str) -> str:
    """Face or photo rows as a table for people, or JSON / JSONL / CSV for programs.

    Every format carries the same fields: JSON and JSONL the rows' `to_dict()`, CSV one
    column per field (probabilities one column per class; `no_face` 1 or 0; `error` only
    for inputs that could not be read).
    """
    if fmt == "json":
        return json.dumps([row.to_dict() for row in rows], indent=2)
    if fmt == "jsonl":
        return "\n".join(json.dumps(row.to_dict()) for row in rows)
    per_face = not rows or isinstance(rows[0], FacePredictionRow)
    columns = FACE_COLUMNS if per_face else PHOTO_COLUMNS
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([*columns, *class_names, "no_face", "error"])
        for row in rows:
            probs = row.probabilities or {}
            writer.writerow(
                [
                    *_csv_cells(row),
                    row.label or "",
                    _number(row.confidence),
                    *[_number(probs.get(n)) for n in class_names],
                    int(row.no_face),
                    row.error or "",
                ]
            )
        return buffer.getvalue().rstrip("\n")
    return _table(rows, class_names, per_face)


def _table(rows: list[Any], class_names: list[str], per_face: bool) -> str:
    width = max([len(r.path) for r in rows] + [4])
    where = (
        f"{'face':>4}  {'box [x, y, w, h]':<22}{'score':>6}"
        if per_face
        else (f"{'faces':>5}  {'source':<12}")
    )
    lines = [
        f"{'path':<{width}}  {where}  {'label':<8}{'conf':>7}  "
        + "  ".join(f"{n:>7}" for n in class_names)
    ]
    for row in rows:
        if row.error:
            lines.append(f"{row.path:<{width}}  ERROR: {row.error}")
            continue
        if row.no_face:
            lines.append(f"{row.path:<{width}}  {'-':>4}  {NO_FACE}")
            continue
        if per_face:
            box = "[" + ", ".join(str(v) for v in row.box or []) + "]"
            score = "-" if row.score is None else f"{row.score:.2f}"
            where = f"{row.face:>4}  {box:<22}{score:>6}"
        else:
            where = f"{row.faces:>5}  {row.source or '':<12}"
        probs = "  ".join(f"{row.probabilities[n]:>7.3f}" for n in class_names)
        lines.append(f"{row.path:<{width}}  {where}  {row.label:<8}{row.confidence:>7.3f}  {probs}")
    return "\n".join(lines)
