"""`data.faces: detect`: train on the faces of a folder of whole photos.

When the data is scanned, every photo's faces are found and cut out exactly as `predict` cuts
them (same detector, framing, alignment and resize), written as PNGs into a cache, and the split
then lists the crops of each photo's largest faces (`data.faces_per_photo`) instead of the
photos. The cache is keyed by the photo's bytes and the crop settings, so a rerun or another run
on the same photos reuses it.
A photo without a face is trained on whole (`data.no_face: whole`), left out (`skip`), or
trained on the fainter faces of a second look, else whole (`second-look`, as `--fallback
second-look` reads it); each is counted in the run summary. With `data.whole_photos_too`,
each training photo with a face is also trained on whole, beside its crops (validation keeps
one entry per face).
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

CACHE_VERSION = 2  # bump when the way crops are cut changes
SECOND_LOOK_MARK = "second-look"  # the .faces file of a photo whose crops came from a second look
NO_FACE_MARK = ".noface"


@dataclasses.dataclass
class FaceSummary:
    """What face detection made of one split's photos (for run_info.json)."""

    photos: int = 0
    with_face: int = 0
    several_faces: int = 0
    faces_trained: int = 0
    whole_with_face: int = 0
    second_look: int = 0  # photos whose faces came from data.no_face: second-look
    no_face_whole: int = 0
    no_face_skipped: int = 0
    cached: int = 0
    no_face_files: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def cache_dir(config: Config) -> Path:
    """The crop cache for this config's crop settings (detector, alignment, size, channels)."""
    from emotion_tf.faces.crop import LANDMARK_CENTRE, LANDMARK_SIDE, framing_for
    from emotion_tf.faces.second_look import SECOND_LOOK_MIN_SCORE
    from emotion_tf.faces.union import SEPARATOR

    data, model = config.data, config.model
    settings = {
        "version": CACHE_VERSION,
        "detector": data.detector,
        "align": data.align,
        "framing": [dataclasses.asdict(framing_for(n)) for n in data.detector.split(SEPARATOR)],
        "landmarks": [LANDMARK_SIDE, LANDMARK_CENTRE],
        "second_look": SECOND_LOOK_MIN_SCORE if data.no_face == "second-look" else None,
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


def _face_crops(
    path: str, data: bytes, config: Config, folder: Path
) -> tuple[list[str], bool, bool]:
    """The crops of every face of the photo, largest first (an empty list when there is no
    face), whether the cache already held them (otherwise they are made now), and whether
    they came from a second look (`data.no_face: second-look`)."""
    from emotion_tf.faces.locate import SOURCE_SECOND_LOOK
    from emotion_tf.io_utils import atomic_write_bytes, atomic_write_text
    from emotion_tf.pipeline.decode import PhotoSource, decode_source
    from emotion_tf.pipeline.options import PhotoOptions
    from emotion_tf.pipeline.run import crop_regions

    digest = hashlib.sha1(data).hexdigest()
    count_path, none_path = folder / f"{digest}.faces", folder / f"{digest}{NO_FACE_MARK}"
    if count_path.is_file():  # written last, after every crop
        count, *how = count_path.read_text().split()
        crops = [str(folder / f"{digest}-{i}.png") for i in range(int(count))]
        return crops, True, how == [SECOND_LOOK_MARK]
    if none_path.is_file():
        return [], True, False
    fallback = "second-look" if config.data.no_face == "second-look" else "none"
    options = PhotoOptions(
        faces="detect", fallback=fallback, detector=config.data.detector, align=config.data.align
    )
    decoded = decode_source(PhotoSource(path, data=data), config.model.channels)
    regions, inputs = crop_regions(decoded, config.model.input_size, options)
    faces = [(r, x) for r, x in zip(regions, inputs) if not r.is_whole_image]
    if not faces:
        atomic_write_text(none_path, display_path(path))
        return [], False, False
    crops = [folder / f"{digest}-{i}.png" for i in range(len(faces))]  # largest first
    for crop, (_, pixels) in zip(crops, faces):
        atomic_write_bytes(crop, _png(pixels))
    second_look = faces[0][0].source == SOURCE_SECOND_LOOK
    atomic_write_text(count_path, f"{len(crops)}{' ' + SECOND_LOOK_MARK if second_look else ''}")
    return [str(crop) for crop in crops], False, second_look


def crop_split(
    files: LabelledFiles, config: Config, split: str
) -> tuple[LabelledFiles, FaceSummary]:
    """The split with each photo replaced by the crops of its largest faces (up to
    data.faces_per_photo, 0 = all, each with the photo's label), and what was found."""
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
        crops, cached, second_look = _face_crops(path, data, config, folder)
        summary.cached += cached
        if crops:
            summary.with_face += 1
            summary.second_look += second_look
            summary.several_faces += len(crops) > 1
            kept = crops[: config.data.faces_per_photo or None]
            summary.faces_trained += len(kept)
            paths.extend(kept)
            labels.extend([label] * len(kept))
            orientations.extend([1] * len(kept))  # crops are cut from the upright photo
            if config.data.whole_photos_too and split == "train":
                summary.whole_with_face += 1
                paths.append(path)
                labels.append(label)
                orientations.append(orientation)
            continue
        summary.no_face_files.append(display_path(path))
        if config.data.no_face != "skip":
            summary.no_face_whole += 1
            paths.append(path)
            labels.append(label)
            orientations.append(orientation)
        else:
            summary.no_face_skipped += 1
    log.info(
        "%s: faces found in %d of %d photos (%s%d with several; %d faces trained on, %s per "
        "photo%s), %d without a face %s; crops in %s",
        split,
        summary.with_face,
        summary.photos,
        f"{summary.second_look} by a second look; " if summary.second_look else "",
        summary.several_faces,
        summary.faces_trained,
        f"up to {config.data.faces_per_photo}" if config.data.faces_per_photo else "all",
        f"; {summary.whole_with_face} also whole" if summary.whole_with_face else "",
        summary.photos - summary.with_face,
        "left out" if config.data.no_face == "skip" else "trained on whole",
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
