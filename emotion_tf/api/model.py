"""`emotion_tf.load()` and the model object it returns: predict per face or per photo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from emotion_tf.api.inputs import ImageInput, LoadedInput, is_many, load_inputs
from emotion_tf.api.results import FacePrediction, ImagePrediction, PhotoPrediction
from emotion_tf.errors import ConfigError, InputError
from emotion_tf.faces.crop import DEFAULT_MARGIN
from emotion_tf.faces.locate import Detector, FaceMode, Fallback, check_mode
from emotion_tf.predict import DEFAULT_MAX_PIXELS, NO_FACE, face_inputs
from emotion_tf.predictors import Predictor
from emotion_tf.video.smoothing import DEFAULT_SMOOTH_S
from emotion_tf.video.source import DEFAULT_SAMPLE_FPS


def load(model: str | Path | None = None) -> EmotionModel:
    """Load a model: None for the one packaged with emotion-tf, or a path to a run directory,
    an export (base or version folder), a packaged `.npz` or a `.tflite` file."""
    from emotion_tf.predictors.resolve import open_model

    return EmotionModel(open_model(model))


class EmotionModel:
    """A loaded happy/sad model. `predict` answers per face, `predict_photo` once per photo.

    Both take one input or a list of them (see `emotion_tf.api.inputs`). One input (not a
    folder) gives one result and raises `InputError` if it cannot be used; a list or a folder
    gives a list of results in input order, where an unusable item carries its `error` and
    the others are answered.
    """

    def __init__(self, predictor: Predictor):
        self.predictor = predictor

    @property
    def class_names(self) -> list[str]:
        return list(self.predictor.class_names)

    @property
    def path(self) -> Path:
        return Path(self.predictor.path)

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self.predictor.metadata)

    def __repr__(self) -> str:
        return f"EmotionModel({str(self.path)!r}, classes={self.class_names})"

    def predict(
        self,
        inputs: ImageInput,
        batch_size: int = 64,
        faces: FaceMode = "auto",
        fallback: Fallback = "none",
        margin: float = DEFAULT_MARGIN,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        detector: Detector | None = None,
    ) -> ImagePrediction | list[ImagePrediction]:
        """Per-face predictions. `faces`: "auto" (find faces unless the image already looks
        like a face crop), "detect" (always find faces) or "none" (classify the whole image)."""
        results = list(
            self._predict_all(inputs, batch_size, faces, fallback, margin, max_pixels, detector)
        )
        return results if is_many(inputs) else _single(results)

    def analyze_video(
        self,
        path: str | Path,
        sample_fps: float | None = DEFAULT_SAMPLE_FPS,
        smooth_s: float = DEFAULT_SMOOTH_S,
        detector: Detector | str | None = None,
    ) -> Any:
        """A video file frame by frame: iterate for one `FrameResult` per analysed frame (its
        people with ids, boxes, smoothed labels and probabilities); afterwards `.summary` holds
        the per-person summary. `sample_fps=None` analyses every frame. See docs/video.md."""
        from emotion_tf.video.analyze import VideoAnalysis

        return VideoAnalysis(self.predictor, path, sample_fps, smooth_s, detector)

    def predict_photo(
        self,
        inputs: ImageInput,
        batch_size: int = 64,
        faces: FaceMode = "auto",
        fallback: Fallback = "none",
        margin: float = DEFAULT_MARGIN,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        detector: Detector | None = None,
    ) -> PhotoPrediction | list[PhotoPrediction]:
        """One answer per photo: the prediction on its largest face (the main subject)."""
        results = [
            photo_answer(result)
            for result in self._predict_all(
                inputs, batch_size, faces, fallback, margin, max_pixels, detector
            )
        ]
        return results if is_many(inputs) else _single(results)

    def _predict_all(
        self,
        inputs: ImageInput,
        batch_size: int,
        faces: FaceMode,
        fallback: Fallback,
        margin: float,
        max_pixels: int,
        detector: Detector | None,
    ) -> Iterator[ImagePrediction]:
        check_mode(faces, fallback)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1. Received: {batch_size!r}")
        size, channels = self.predictor.input_size, self.predictor.channels
        pending: list[tuple[LoadedInput, list[Any], np.ndarray | None]] = []
        queued = 0
        for item in load_inputs(inputs, channels, max_pixels):
            regions, crops = [], None
            if item.image is not None:
                regions, crops = face_inputs(item.image, size, faces, fallback, margin, detector)
                queued += len(regions)
            pending.append((item, regions, crops))
            if queued >= batch_size or len(pending) >= batch_size:
                yield from self._flush(pending, batch_size)
                pending, queued = [], 0
        yield from self._flush(pending, batch_size)

    def _flush(
        self, pending: list[tuple[LoadedInput, list[Any], np.ndarray | None]], batch_size: int
    ) -> Iterator[ImagePrediction]:
        crops = [c for _, _, c in pending if c is not None and len(c)]
        probabilities = np.zeros((0, len(self.class_names)), np.float32)
        if crops:
            stacked = np.concatenate(crops)
            probabilities = np.concatenate(
                [
                    self.predictor.predict_images(stacked[i : i + batch_size])["probabilities"]
                    for i in range(0, len(stacked), batch_size)
                ]
            )
        cursor = 0
        for item, regions, _ in pending:
            if item.error is not None:
                yield ImagePrediction(item.name, error=item.error)
                continue
            found = []
            for region in regions:
                row = probabilities[cursor]
                cursor += 1
                best = int(np.argmax(row))
                found.append(
                    FacePrediction(
                        label=self.class_names[best],
                        confidence=float(row[best]),
                        probabilities={n: float(p) for n, p in zip(self.class_names, row)},
                        box=region.box.as_list(),
                        score=region.box.score,
                        source=region.source,
                    )
                )
            yield ImagePrediction(item.name, found)


def photo_answer(result: ImagePrediction) -> PhotoPrediction:
    """The photo's answer: its largest face (faces come largest first), or why there is none."""
    if result.error is not None:
        return PhotoPrediction(result.input, error=result.error)
    if not result.faces:
        return PhotoPrediction(result.input, error=NO_FACE)
    main = result.faces[0]
    return PhotoPrediction(
        result.input,
        main.label,
        main.confidence,
        main.probabilities,
        main.box,
        len(result.faces),
    )


def _single(results: list[Any]) -> Any:
    (result,) = results
    if result.error is not None and result.error != NO_FACE:
        raise InputError(f"{result.input}: {result.error}")
    return result
