"""Faces -> crops -> batches through the model -> per-face and per-photo answers.

`PhotoPipeline(predictor, options).run(sources)` yields one `PhotoAnswer` per source, in
order. Crops of several photos share a model call (up to `options.batch_size` crops); test-time
flip and calibration are the predictor's (`emotion_tf.predictors`), applied in that one place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from emotion_tf.faces.crop import crop_face, framing_of
from emotion_tf.faces.detector import FaceBox
from emotion_tf.faces.locate import (
    SOURCE_CROP,
    SOURCE_DETECTOR,
    SOURCE_SECOND_LOOK,
    Detector,
    FaceRegion,
    locate_faces,
    resolve_detector,
)
from emotion_tf.faces.photo_label import photo_probabilities
from emotion_tf.pipeline.decode import Decoded, PhotoSource, decode_source
from emotion_tf.pipeline.limits import MAX_FACES_PER_IMAGE
from emotion_tf.pipeline.options import DEFAULT_OPTIONS, UNCLEAR, PhotoOptions
from emotion_tf.predictors import Predictor
from emotion_tf.preprocess import resize_uint8

NO_FACE = "no face found"
# Sources whose regions are faces (counted in `faces`); the whole-image fallback is not one.
FACE_SOURCES = (SOURCE_DETECTOR, SOURCE_SECOND_LOOK, SOURCE_CROP)


def detector_score(score: float | None) -> float | None:
    """The detector's confidence on one 0-1 scale: BlazeFace's probability as it is, and a Haar
    box's count of merged cascade hits n as n / (n + 4) (4 hits, the detector's bar, is 0.5)."""
    if score is None:
        return None
    return round(float(score), 4) if score <= 1.0 else round(score / (score + 4.0), 4)


@dataclasses.dataclass
class FaceAnswer:
    """One region read: its box [x, y, w, h] in the upright photo, how it was chosen, the
    detector's 0-1 `score` (None for the whole image) and the model's answer."""

    label: str
    confidence: float
    probabilities: dict[str, float]
    box: list[int]
    score: float | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class PhotoAnswer:
    """One input's answer: its faces (largest first), the photo's label from them (the photo
    rule), or `no_face` (nothing to read), or the `error` that stopped it."""

    name: str
    faces: list[FaceAnswer] = dataclasses.field(default_factory=list)
    label: str | None = None
    confidence: float | None = None
    probabilities: dict[str, float] | None = None
    source: str | None = None  # how the photo was read: the first region's source
    rule: str | None = None
    no_face: bool = False
    error: str | None = None

    @property
    def face_count(self) -> int:
        """Faces read (detected, second look, or the image as a face crop); 0 when whole."""
        return sum(1 for face in self.faces if face.source in FACE_SOURCES)


def crop_regions(
    decoded: Decoded,
    size: int,
    options: PhotoOptions = DEFAULT_OPTIONS,
    detector: Detector | None = None,
) -> tuple[list[FaceRegion], np.ndarray]:
    """The regions of a decoded photo to read and the model inputs cut from them: uint8
    [regions, size, size, C], resized like training images (largest face first)."""
    if options.faces != "none" and detector is None:
        detector = resolve_detector(options.detector)
    framing = framing_of(detector) if detector is not None else None
    regions = locate_faces(decoded.colour, options.faces, options.fallback, detector)
    regions = regions[:MAX_FACES_PER_IMAGE]
    image = decoded.image
    crops = []
    for region in regions:
        pixels = (
            image
            if region.is_whole_image
            else crop_face(image, region.box, options.margin, framing=framing, align=options.align)
        )
        crops.append(model_input(pixels, size))
    empty = np.zeros((0, size, size, image.shape[-1]), np.uint8)
    return regions, (np.stack(crops) if crops else empty)


def model_input(pixels: np.ndarray, size: int) -> np.ndarray:
    """uint8 [size, size, C] from uint8 [H, W, C], resized as training images are."""
    return resize_uint8(tf.constant(pixels), size).numpy()


@dataclasses.dataclass
class Prepared:
    """A decoded photo's regions and crops, ready for the model (or its error)."""

    source: PhotoSource
    regions: list[FaceRegion] = dataclasses.field(default_factory=list)
    crops: np.ndarray | None = None  # one per region, then the whole photo when `context`
    error: str | None = None
    context: bool = False  # the last crop is the whole photo (options.context)

    @property
    def rows(self) -> int:
        """Model inputs (and answers) this photo needs."""
        return len(self.regions) + int(self.context)


@dataclasses.dataclass(frozen=True)
class ModelShape:
    """What the pipeline needs of a model to prepare crops without running it (a Beam worker's
    reading step; the model itself runs in RunInference)."""

    class_names: tuple[str, ...]
    input_size: int
    channels: int

    @classmethod
    def of(cls, predictor: Predictor) -> ModelShape:
        return cls(tuple(predictor.class_names), predictor.input_size, predictor.channels)


class PhotoPipeline:
    """A photo in, an answer out, the same for every door; see the module docstring."""

    def __init__(self, predictor: Predictor | ModelShape, options: PhotoOptions = DEFAULT_OPTIONS):
        self.predictor = predictor
        self.options = options
        self.class_names = list(predictor.class_names)
        self.detector = resolve_detector(options.detector) if options.faces != "none" else None

    def prepare(self, source: PhotoSource) -> Prepared:
        """Decode one source and cut its crops (no model call)."""
        if source.error is not None:
            return Prepared(source, error=source.error)
        try:
            decoded = decode_source(source, self.predictor.channels)
        except ValueError as err:
            return Prepared(source, error=str(err))
        size = self.predictor.input_size
        regions, crops = crop_regions(decoded, size, self.options, self.detector)
        context = bool(self.options.context) and bool(regions) and not regions[0].is_whole_image
        if context:
            crops = np.concatenate([crops, model_input(decoded.image, size)[None]])
        return Prepared(source, regions, crops, context=context)

    def run(self, sources: Iterable[PhotoSource]) -> Iterator[PhotoAnswer]:
        """One answer per source, in order."""
        pending: list[Prepared] = []
        queued = 0
        batch = self.options.batch_size
        for source in sources:
            item = self.prepare(source)
            pending.append(item)
            queued += len(item.regions)
            if queued >= batch or len(pending) >= batch:
                yield from self._answer(pending)
                pending, queued = [], 0
        yield from self._answer(pending)

    def answer_one(self, source: PhotoSource) -> PhotoAnswer:
        (answer,) = self.run([source])
        return answer

    def _answer(self, pending: list[Prepared]) -> Iterator[PhotoAnswer]:
        crops = [item.crops for item in pending if item.crops is not None and len(item.crops)]
        probabilities = np.zeros((0, len(self.class_names)), np.float32)
        if crops:
            stacked = np.concatenate(crops)
            size = self.options.batch_size
            probabilities = np.concatenate(
                [
                    np.asarray(
                        self.predictor.predict_images(stacked[i : i + size])["probabilities"]
                    )
                    for i in range(0, len(stacked), size)
                ]
            )
        cursor = 0
        for item in pending:
            count = item.rows
            yield self._photo_answer(item, probabilities[cursor : cursor + count])
            cursor += count

    def answer(self, item: Prepared, probabilities: np.ndarray) -> PhotoAnswer:
        """A prepared photo's answer from the probabilities of its crops [item.rows, classes]."""
        return self._photo_answer(item, probabilities)

    def _photo_answer(self, item: Prepared, probabilities: np.ndarray) -> PhotoAnswer:
        name = item.source.name
        if item.error is not None:
            return PhotoAnswer(name, error=item.error)
        if not item.regions:
            return PhotoAnswer(name, no_face=True)
        names = self.class_names
        bar = self.options.min_confidence
        whole = probabilities[-1] if item.context else None
        probabilities = probabilities[: len(item.regions)]
        faces = [
            _face_answer(region.box, region.source, row, names, bar)
            for region, row in zip(item.regions, probabilities)
        ]
        photo = photo_probabilities(
            probabilities, [max(1, face.box[2] * face.box[3]) for face in faces], self.options.rule
        )
        if whole is not None:
            photo = (1.0 - self.options.context) * np.asarray(photo) + self.options.context * whole
        best = int(np.argmax(photo))
        detected = faces[0].source in (SOURCE_DETECTOR, SOURCE_SECOND_LOOK)
        label = UNCLEAR if bar is not None and photo[best] < bar else names[best]
        return PhotoAnswer(
            name,
            faces,
            label,
            float(photo[best]),
            {n: float(p) for n, p in zip(names, photo)},
            source=faces[0].source,
            rule=self.options.rule if detected else None,
        )


def _face_answer(
    box: FaceBox, source: str, row: np.ndarray, names: list[str], bar: float | None
) -> FaceAnswer:
    best = int(np.argmax(row))
    return FaceAnswer(
        UNCLEAR if bar is not None and row[best] < bar else names[best],
        float(row[best]),
        {n: float(p) for n, p in zip(names, row)},
        box.as_list(),
        detector_score(box.score),
        source,
    )
