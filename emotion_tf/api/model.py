"""`emotion_tf.load()` and the model object it returns: predict per face or per photo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emotion_tf.api.inputs import ImageInput, is_many, load_inputs
from emotion_tf.api.results import FacePrediction, ImagePrediction, PhotoPrediction
from emotion_tf.errors import InputError
from emotion_tf.faces.locate import Detector, FaceMode, Fallback
from emotion_tf.faces.photo_label import PhotoRule
from emotion_tf.pipeline.options import DEFAULT_OPTIONS, PhotoOptions
from emotion_tf.pipeline.run import PhotoAnswer, PhotoPipeline
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
        batch_size: int | None = None,
        faces: FaceMode | None = None,
        fallback: Fallback | None = None,
        margin: float | None = None,
        max_pixels: int | None = None,
        detector: Detector | str | None = None,
        align: bool | None = None,
        min_confidence: float | None = None,
    ) -> ImagePrediction | list[ImagePrediction]:
        """Per-face predictions. `faces`: "auto" (find faces unless the image already looks
        like a face crop), "detect" (always find faces) or "none" (classify the whole image).
        Every option left out takes the photo pipeline's default, as the CLI does."""
        options = _options(batch_size, faces, fallback, margin, max_pixels, detector, align)
        # Per-face answers only: the whole photo's own answer (context) would be read for nothing.
        options = options.replace(min_confidence=min_confidence, context=0.0)
        results = [_image_prediction(a) for a in self._answers(inputs, options)]
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
        batch_size: int | None = None,
        faces: FaceMode | None = None,
        fallback: Fallback | None = None,
        margin: float | None = None,
        max_pixels: int | None = None,
        detector: Detector | str | None = None,
        align: bool | None = None,
        rule: PhotoRule | None = None,
        min_confidence: float | None = None,
        context: float | None = None,
    ) -> PhotoPrediction | list[PhotoPrediction]:
        """One answer per photo from all its faces by the photo rule (default "area") and the
        whole photo (`context`, default 0.2), exactly as `emotion-tf predict --per-photo` gives
        it; below `min_confidence` (off by default) the label is "unclear" ("can't tell"), the
        probabilities are kept."""
        options = _options(batch_size, faces, fallback, margin, max_pixels, detector, align, rule)
        options = options.replace(min_confidence=min_confidence, context=context)
        results = [_photo_prediction(a) for a in self._answers(inputs, options)]
        return results if is_many(inputs) else _single(results)

    def _answers(self, inputs: ImageInput, options: PhotoOptions) -> Iterator[PhotoAnswer]:
        pipeline = PhotoPipeline(self.predictor, options)
        return pipeline.run(load_inputs(inputs, options.max_pixels))


def _options(
    batch_size: int | None,
    faces: str | None,
    fallback: str | None,
    margin: float | None,
    max_pixels: int | None,
    detector: Detector | str | None,
    align: bool | None,
    rule: str | None = None,
) -> PhotoOptions:
    """The pipeline's defaults with the caller's choices."""
    return DEFAULT_OPTIONS.replace(
        batch_size=batch_size,
        faces=faces,
        fallback=fallback,
        margin=margin,
        max_pixels=max_pixels,
        detector=detector,
        align=align,
        rule=rule,
    )


def _image_prediction(answer: PhotoAnswer) -> ImagePrediction:
    if answer.error is not None:
        return ImagePrediction(answer.name, error=answer.error)
    faces = [FacePrediction(**face.to_dict()) for face in answer.faces]
    return ImagePrediction(answer.name, faces, no_face=answer.no_face)


def _photo_prediction(answer: PhotoAnswer) -> PhotoPrediction:
    """The photo's answer: from all its faces (the photo rule), or why there is none."""
    if answer.error is not None:
        return PhotoPrediction(answer.name, error=answer.error)
    if answer.no_face:
        return PhotoPrediction(answer.name, no_face=True)
    return PhotoPrediction(
        answer.name,
        answer.label,
        answer.confidence,
        answer.probabilities,
        answer.faces[0].box,
        answer.face_count,
        source=answer.source,
        rule=answer.rule,
    )


def _single(results: list[Any]) -> Any:
    (result,) = results
    if result.error is not None:
        raise InputError(f"{result.input}: {result.error}")
    return result
