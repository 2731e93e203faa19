"""`emotion-tf serve` with faces (the default): each encoded photo goes through the photo
pipeline, as `emotion-tf predict --per-photo` reads it, and gets one answer per instance.

The answer has the export's outputs (`probabilities` in class order, `label`, `confidence`,
`class_index`) for the photo as a whole (the photo rule over its faces), and `faces` (faces
read), `source` (how the photo was read), `boxes` (each face's [x, y, w, h]) and `no_face`
(nothing to read, only with `--fallback none`: a 200 whose label is null).
"""

from __future__ import annotations

import threading
from typing import Any

from emotion_tf.pipeline.decode import PhotoSource
from emotion_tf.pipeline.options import PhotoOptions
from emotion_tf.pipeline.run import PhotoAnswer, PhotoPipeline
from emotion_tf.serve.protocol import PredictRequest, RequestError

PHOTO_OUTPUTS = (
    "probabilities",
    "label",
    "confidence",
    "class_index",
    "faces",
    "source",
    "boxes",
    "no_face",
)


class PhotoReader:
    """One photo pipeline per served model version (built on first use, shared by threads:
    the detectors take turns on their own state)."""

    def __init__(self, options: PhotoOptions):
        self.options = options
        self._pipelines: dict[int, PhotoPipeline] = {}
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Build the detector before the first request."""
        from emotion_tf.faces.locate import resolve_detector

        resolve_detector(self.options.detector)

    def pipeline(self, predictor: Any) -> PhotoPipeline:
        with self._lock:
            key = id(predictor)
            if key not in self._pipelines:
                self._pipelines = {key: PhotoPipeline(predictor, self.options)}
            return self._pipelines[key]

    def read(self, predictor: Any, parsed: PredictRequest) -> list[PhotoAnswer]:
        """The answer of every instance, in order; an undecodable one is a 400 naming it."""
        sources = [
            PhotoSource(label, data=value) for value, label in zip(parsed.values, parsed.labels)
        ]
        answers = list(self.pipeline(predictor).run(sources))
        for answer in answers:
            if answer.error is not None:
                raise RequestError(f"{answer.name}: {answer.error}")
        return answers


def photo_outputs(answer: PhotoAnswer, class_names: list[str]) -> dict[str, Any]:
    """One instance's outputs."""
    probabilities = (
        [answer.probabilities[name] for name in class_names] if answer.probabilities else None
    )
    return {
        "probabilities": probabilities,
        "label": answer.label,
        "confidence": answer.confidence,
        "class_index": class_names.index(answer.label) if answer.label else None,
        "faces": answer.face_count,
        "source": answer.source,
        "boxes": [face.box for face in answer.faces],
        "no_face": answer.no_face,
    }


def photo_response(
    answers: list[PhotoAnswer], class_names: list[str], columnar: bool
) -> dict[str, Any]:
    """TF Serving's response body for photo answers, in the request's form."""
    rows = [photo_outputs(answer, class_names) for answer in answers]
    if columnar:
        return {"outputs": {name: [row[name] for row in rows] for name in PHOTO_OUTPUTS}}
    return {"predictions": rows}
