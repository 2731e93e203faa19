"""`data.faces: detect`: train on the faces of a folder of whole photos.

When the data is scanned, every photo's faces are found and its largest face is cut out exactly
as `predict` cuts it (same detector, framing, alignment and resize), written as a PNG into a
cache, and the split then lists the crops instead of the photos. The cache is keyed by the
photo's bytes and the crop settings, so a rerun or another run on the same photos reuses it.
A photo without a face is trained on whole (`data.no_face: whole`) or left out (`skip`);
both are counted in the run summary.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from emotion_tf.config import Config
from emotion_tf.data.files import LabelledFiles, display_path
from emotion_tf.errors import ConfigError, DataError

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when the way crops are cut changes
NO_FACE_MARK = ".noface"


@dataclasses.dataclass
class FaceSummary:
    """What face detection made of one split's photos (for run_info.json)."""

    photos: int = 0
    with_face: int = 0
    several_faces: int = 0
    no_face_whole: int = 0
    no_face_skipped: int = 0
    cached: int = 0
    no_face_files: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def cache_dir(config: Config) -> Path:
    """The crop cache for this config's crop settings (detector, alignment, size, channels)."""
    from emotion_tf.faces.crop import LANDMARK_CENTRE, LANDMARK_SIDE, framing_for
    from emotion_tf.faces.union import SEPARATOR

    data, model = config.data, config.model
    settings = {
        "version": CACHE_VERSION,
        "detector": data.detector,
        "align": data.align,
        "framing": [dataclasses.asdict(framing_for(n)) for n in data.detector.split(SEPARATOR)],
        "landmarks": [LANDMARK_SIDE, LANDMARK_CENTRE],
        "size": model.input_size,
        "channels": model.channels,
    }
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    root = Path(data.face_cache) if data.face_cache else Path(config.train.run_dir) / "face_crops"
    return root / f"{data.detector}-{key}"


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _crop_one(path: str, data: bytes, config: Config, folder: Path) -> tuple[str | None, int]:
    """The cached crop of the photo's largest face (made now if missing) and the number of
    faces found; (None, 0) when there is no face."""
    from emotion_tf.faces.photo import decode_photo
    from emotion_tf.io_utils import atomic_write_bytes, atomic_write_text
    from emotion_tf.predict import face_inputs

    digest = hashlib.sha1(data).hexdigest()
    crop_path, none_path = folder / f"{digest}.png", folder / f"{digest}{NO_FACE_MARK}"
    if crop_path.is_file():
        return str(crop_path), int((folder / f"{digest}.faces").read_text() or 1)
    if none_path.is_file():
        return None, 0
    channels = config.model.channels
    image = decode_photo(data, channels)
    colour = decode_photo(data, 3) if channels != 3 else None
    regions, inputs = face_inputs(
        image,
        config.model.input_size,
        "detect",
        "none",
        None,
        config.data.detector,
        config.data.align,
        colour,
    )
    if not regions:
        atomic_write_text(none_path, display_path(path))
        return None, 0
    atomic_write_text(folder / f"{digest}.faces", str(len(regions)))
    atomic_write_bytes(crop_path, _png(inputs[0]))  # regions come largest first
    return str(crop_path), len(regions)


def crop_split(
    files: LabelledFiles, config: Config, split: str
) -> tuple[LabelledFiles, FaceSummary]:
    """The split with each photo replaced by its largest face's crop, and what was found."""
    from emotion_tf.data.files import read_image_bytes

    if config.data.faces != "detect":
        raise ConfigError(f"crop_split needs data.faces=detect. Received: {config.data.faces!r}")
    folder = cache_dir(config)
    folder.mkdir(parents=True, exist_ok=True)
    summary = FaceSummary()
    paths: list[str] = []
    labels: list[int] = []
    orientations: list[int] = []
    for path, label, orientation in zip(files.paths, files.labels, files.orientation_list()):
        summary.photos += 1
        data, info = read_image_bytes(path, config.data.max_pixels)
        if data is None:  # the scan has checked every file; it changed since
            raise DataError(f"{display_path(path)}: {info.reason}")
        if info.orientation != 1:
            from emotion_tf.data.orientation import upright_png

            data = upright_png(data, info.orientation)
        existed = any(
            (folder / f"{hashlib.sha1(data).hexdigest()}{suffix}").is_file()
            for suffix in (".png", NO_FACE_MARK)
        )
        summary.cached += existed
        crop, count = _crop_one(path, data, config, folder)
        if crop is not None:
            summary.with_face += 1
            summary.several_faces += count > 1
            paths.append(crop)
            labels.append(label)
            orientations.append(1)  # crops are cut from the upright photo
            continue
        summary.no_face_files.append(display_path(path))
        if config.data.no_face == "whole":
            summary.no_face_whole += 1
            paths.append(path)
            labels.append(label)
            orientations.append(orientation)
        else:
            summary.no_face_skipped += 1
    log.info(
        "%s: faces found in %d of %d photos (%d with several; largest face used), %d without a "
        "face %s; crops in %s",
        split,
        summary.with_face,
        summary.photos,
        summary.several_faces,
        summary.photos - summary.with_face,
        "trained on whole" if config.data.no_face == "whole" else "left out",
        folder,
    )
    cropped = LabelledFiles(files.class_names, paths, labels, files.ignored, orientations)
    for index, name in enumerate(files.class_names):
        if index not in labels:
            raise DataError(
                f"no face found in any {split} photo of class '{name}' and data.no_face=skip: "
                "nothing left to train on"
            )
    return cropped, summary
