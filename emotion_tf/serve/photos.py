"""`emotion-tf serve` with faces (the default): each encoded photo goes through the photo
pipeline, as `emotion-tf predict --per-photo` reads it, and gets one answer per instance.

The answer has the export's outputs (`probabilities` in class order, `label`, `confidence`,
`class_index`) for the photo as a whole (the photo rule over its faces), and `faces` (faces
read), `source` (how the photo was read), `boxes` (each face's [x, y, w, h]) and `no_face`
(nothing to read, only with `--fallback none`: a 200 whose label is null).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from emotion_tf.pipeline.decode import PhotoSource
from emotion_tf.pipeline.limits import DEFAULT_MAX_REQUEST_S
from emotion_tf.pipeline.options import PhotoOptions
from emotion_tf.pipeline.run import PhotoAnswer, PhotoPipeline
from emotion_tf.serve.protocol import PredictRequest, RequestError


class ClientLeftError(Exception):
    """The client closed its connection while its photos were being read."""


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

    def __init__(self, options: PhotoOptions, max_request_s: float = DEFAULT_MAX_REQUEST_S):
        self.options = options
        self.max_request_s = max_request_s
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

    def read(
        self, predictor: Any, parsed: PredictRequest, gone: threading.Event | None = None
    ) -> list[PhotoAnswer]:
        """The answer of every instance, in order; an undecodable one is a 400 naming it.

        Work stops between photos once `gone` is set (the client left: `ClientLeftError`) or the
        request has run `options.max_request_s` (a 413 asking for smaller requests).
        """
        started = time.monotonic()
        limit = self.max_request_s

        def sources() -> Iterator[PhotoSource]:
            for value, label in zip(parsed.values, parsed.labels):
                if gone is not None and gone.is_set():
                    raise ClientLeftError
                if time.monotonic() - started > limit:
                    raise RequestError(
                        f"{label}: the request needed more than {limit:g} s of work "
                        "(--max-request-seconds); send fewer or smaller photos per request",
                        413,
                    )
                yield PhotoSource(label, data=value)

        pipeline = self.pipeline(predictor)
        answers = []
        for source in sources():  # one photo at a time, so a stop takes effect at once
            answers.append(pipeline.answer_one(source))
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
        "class_index": int(max(range(len(class_names)), key=probabilities.__getitem__))
        if probabilities
        else None,
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
