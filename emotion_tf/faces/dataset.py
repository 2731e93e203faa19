"""Turn a folder of photos into a training folder of face crops (`emotion-tf data crop-faces`)."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from emotion_tf.data.files import list_images, read_upright_image
from emotion_tf.errors import DataError
from emotion_tf.faces.crop import convert_channels, crop_face
from emotion_tf.faces.locate import Detector, FaceMode, check_mode, locate_faces, resolve_detector
from emotion_tf.pipeline.options import DEFAULT_MAX_PIXELS

MANIFEST = "crops.csv"


@dataclasses.dataclass
class CropResult:
    """What became of one source image."""

    source: str
    outputs: list[str] = dataclasses.field(default_factory=list)
    boxes: list[list[int]] = dataclasses.field(default_factory=list)
    scores: list[float | None] = dataclasses.field(default_factory=list)
    kind: str = ""  # "detector", "crop" (copied: already a face crop), "no_face", "error"
    error: str | None = None


def _check_folders(src: Path, out: Path, overwrite: bool) -> None:
    if not src.is_dir():
        raise DataError(f"source folder not found: {src}")
    src_real, out_real = src.resolve(), out.resolve()
    if out_real == src_real or src_real in out_real.parents:
        raise DataError(f"output folder must lie outside the source folder. Received: {out}")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DataError(f"output folder is not empty: {out} (use --overwrite to add to it)")


def list_sources(src: Path) -> list[Path]:
    """Image files under `src`, recursively, sorted."""

    images, _ = list_images(Path(src))
    return [Path(p) for p in images]


def crop_faces_folder(
    src: Path,
    out: Path,
    faces: FaceMode = "auto",
    margin: float | None = None,
    size: int | None = None,
    channels: int | None = None,
    all_faces: bool = False,
    overwrite: bool = False,
    detector: Detector | str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    align: bool = False,
) -> Iterator[CropResult]:
    """Crop the faces of every image under `src` into the same sub-folders under `out`.

    One crop per photo (its largest face: a folder label describes the main subject), or every
    face with `all_faces`. Images that already look like face crops (`faces="auto"`) are copied
    as they are (re-encoded as PNG). Crops are square, framed like FER2013 crops for the
    detector (or with `margin` around its box; with `align` from the landmarks), optionally
    resized to `size` and converted to `channels`. Yields one result per source; `crops.csv`
    in `out` lists them all at the end.
    """
    from emotion_tf.faces.crop import framing_of
    from emotion_tf.faces.photo import decode_photo
    from emotion_tf.io_utils import atomic_write_bytes, atomic_write_text

    src, out = Path(src), Path(out)
    check_mode(faces)
    if faces == "none":
        raise DataError("crop-faces needs --faces auto or detect")
    if size is not None and size < 8:
        raise DataError(f"size must be >= 8 pixels. Received: size={size}")
    _check_folders(src, out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    import tensorflow as tf

    detector = resolve_detector(detector)
    framing = framing_of(detector)

    rows: list[list[str]] = []
    for path in list_sources(src):
        relative = path.relative_to(src)
        result = CropResult(str(path))
        data, error = read_upright_image(str(path), max_pixels)
        image = None
        if error is None:
            try:
                image = decode_photo(data, 3)
            except tf.errors.InvalidArgumentError:
                error = "cannot be decoded as jpg/png/bmp/gif"
        if error is not None or image is None:
            result.kind, result.error = "error", error
            rows.append([str(relative), "", "", "", "", "", "", "error", "", error or ""])
            yield result
            continue
        regions = locate_faces(image, faces, "none", detector)
        if not regions:
            result.kind = "no_face"
            rows.append([str(relative), "", "", "", "", "", "", "no_face", "", "no face found"])
            yield result
            continue
        chosen = regions if all_faces else regions[:1]
        result.kind = chosen[0].source
        for index, region in enumerate(chosen):
            pixels = (
                image
                if region.is_whole_image
                else crop_face(image, region.box, margin, framing=framing, align=align)
            )
            pixels = _finish(pixels, size, channels)
            name = f"{path.stem}_face{index}.png" if all_faces else f"{path.stem}.png"
            target = out / relative.parent / name
            atomic_write_bytes(target, _png(pixels))
            result.outputs.append(str(target))
            result.boxes.append(region.box.as_list())
            result.scores.append(region.box.score)
            score = "" if region.box.score is None else f"{region.box.score:g}"
            rows.append(
                [
                    str(relative),
                    str(index),
                    *map(str, region.box.as_list()),
                    score,
                    region.source,
                    os.path.relpath(target, out),
                    "",
                ]
            )
        yield result
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["source", "face", "x", "y", "w", "h", "score", "kind", "crop", "note"])
    writer.writerows(rows)
    atomic_write_text(out / MANIFEST, buffer.getvalue())


def _finish(pixels: np.ndarray, size: int | None, channels: int | None) -> np.ndarray:
    if size is not None:
        import tensorflow as tf

        from emotion_tf.preprocess import resize_uint8

        pixels = resize_uint8(tf.constant(pixels), size).numpy()
    return convert_channels(pixels, channels) if channels else pixels


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, "PNG")
    return buffer.getvalue()
