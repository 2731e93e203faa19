"""The one evaluation path: a Keras model on a split, and any model on a folder.

`predict_split` is what `train` writes to metrics.json and what the report recomputes: the same
images in the same order, with the run's test-time flip. `evaluate_export` runs any model
backend (SavedModel export, packaged model, TFLite file, run checkpoint; each applies the same
flip) for `emotion-tf evaluate`.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from emotion_tf.config import Config
from emotion_tf.data.files import discover_classes, list_split, split_folder
from emotion_tf.data.pipeline import Split, decoded_examples
from emotion_tf.errors import DataError
from emotion_tf.faces.locate import (
    SOURCE_FALLBACK,
    SOURCE_NAMES,
    SOURCE_SECOND_LOOK,
    Detector,
    FaceMode,
    Fallback,
    check_mode,
    resolve_detector,
)
from emotion_tf.faces.photo_label import DEFAULT_PHOTO_RULE, check_photo_rule
from emotion_tf.metrics import (
    add_intervals,
    classification_metrics,
    format_interval,
    wilson_interval,
)
from emotion_tf.predict import (
    NO_FACE,
    FacePredictionRow,
    PredictionRow,
    per_photo_rows,
    predict_faces,
    predict_paths,
)
from emotion_tf.predictors import Predictor


@dataclasses.dataclass
class Mistake:
    image: np.ndarray  # uint8 [size, size, channels], as the model saw it
    true_index: int
    predicted_index: int
    confidence: float
    position: int  # index of the example in the split's order


@dataclasses.dataclass
class SplitPredictions:
    labels: np.ndarray  # [N] true class indices
    probabilities: np.ndarray  # [N, classes]
    mistakes: list[Mistake]  # most confident first

    @property
    def accuracy(self) -> float:
        return float((self.probabilities.argmax(axis=1) == self.labels).mean())


def predict_split(
    model: Any, split: Split, config: Config, flip: bool, keep_mistakes: int = 0
) -> SplitPredictions:
    """Predict every example of `split` (files or TFRecords) in order with a Keras model.

    `flip` averages each image's probabilities with its mirror image's (`model.test_time_flip`).
    Keeps the images of the `keep_mistakes` most confident mistakes.
    """
    dataset = decoded_examples(split, config.model.input_size, config.model.channels)
    dataset = dataset.batch(config.data.batch_size).prefetch(tf.data.AUTOTUNE)
    labels, probabilities = [], []
    heap: list[tuple[float, int, Mistake]] = []
    position = 0
    for images, batch_labels in dataset:
        pixels = tf.cast(images, tf.float32)
        probs = np.asarray(model(pixels, training=False), dtype=np.float64)
        if flip:
            mirrored = model(tf.reverse(pixels, axis=[2]), training=False)
            probs = (probs + np.asarray(mirrored, dtype=np.float64)) / 2
        truth = batch_labels.numpy()
        predicted = probs.argmax(axis=1)
        wrong = np.flatnonzero(predicted != truth) if keep_mistakes else []
        for i in wrong:
            index = position + int(i)
            confidence = float(probs[i, predicted[i]])
            rank = (confidence, -index)  # ties: the earlier example wins
            if len(heap) >= keep_mistakes and rank <= heap[0][:2]:
                continue
            mistake = Mistake(
                images[i].numpy(), int(truth[i]), int(predicted[i]), confidence, index
            )
            if len(heap) < keep_mistakes:
                heapq.heappush(heap, (*rank, mistake))
            else:
                heapq.heapreplace(heap, (*rank, mistake))
        labels.append(truth)
        probabilities.append(probs)
        position += len(truth)
    if not labels:
        raise DataError("the split produced no images to evaluate")
    mistakes = [entry[2] for entry in sorted(heap, key=lambda e: (-e[0], -e[1]))]
    return SplitPredictions(np.concatenate(labels), np.concatenate(probabilities), mistakes)


def _one_row_per_file(
    model: Predictor,
    paths: list[str],
    batch_size: int,
    faces: FaceMode,
    fallback: Fallback,
    margin: float | None,
    detector: Detector | str | None,
    counts: dict[str, int],
    align: bool = False,
    rule: str = DEFAULT_PHOTO_RULE,
    boxes: dict[str, list[list[int]]] | None = None,
) -> list[PredictionRow]:
    """One row per file in order; with face detection, the file's faces give one answer by
    `rule` (emotion_tf.faces.photo_label), and a file without a face is an error row (or,
    with `fallback="whole-image"`, is classified whole). `boxes`, when given, receives each
    file's face boxes."""
    if faces == "none":
        return list(predict_paths(model, paths, batch_size))
    face_rows = predict_faces(
        model, paths, faces, fallback, batch_size, margin=margin, detector=detector, align=align
    )
    if boxes is not None:
        face_rows = _recording_boxes(face_rows, boxes)
    rows = per_photo_rows(face_rows, model.class_names, rule)
    chosen: list[PredictionRow] = []
    for row in rows:
        if row.no_face or row.source in (SOURCE_FALLBACK, SOURCE_SECOND_LOOK):
            counts["no_face_files"] += 1
        if row.source == SOURCE_SECOND_LOOK:
            counts["second_look_files"] += 1
        if row.faces > 1:
            counts["multi_face_files"] += 1
        counts["faces_found"] += row.faces
        chosen.append(PredictionRow(row.path, error=NO_FACE) if row.no_face else row)
    return chosen


def _recording_boxes(
    rows: Iterator[FacePredictionRow], boxes: dict[str, list[list[int]]]
) -> Iterator[FacePredictionRow]:
    """Pass `rows` through, noting each face's box under its file's path."""
    for row in rows:
        if row.box is not None and row.source != SOURCE_FALLBACK:
            boxes.setdefault(row.path, []).append(list(row.box))
        yield row


@dataclasses.dataclass
class LabelledPredictions:
    """A model's probabilities on a labelled folder, with the files it could not classify."""

    folder: Path
    labels: np.ndarray  # class indices of the model's class_names
    probabilities: np.ndarray  # [N, classes]
    errors: list[dict[str, str]]
    counts: dict[str, int]
    paths: list[str] = dataclasses.field(default_factory=list)  # the rows' files, in order
    sources: list[str | None] = dataclasses.field(default_factory=list)  # how each was read
    boxes: dict[str, list[list[int]]] = dataclasses.field(default_factory=dict)  # faces found


def predict_labelled(
    model: Predictor,
    data_dir: Path,
    batch_size: int = 64,
    faces: FaceMode = "none",
    fallback: Fallback = "none",
    margin: float | None = None,
    detector: Detector | str | None = None,
    align: bool = False,
    rule: str = DEFAULT_PHOTO_RULE,
) -> LabelledPredictions:
    """`model`'s probabilities on the images of `data_dir` (its validation split if it has one).

    With `faces="auto"` or `"detect"`, each file gets one answer from all its faces (`rule`);
    files without a face are listed in `errors` and counted in `no_face_files` (with
    `fallback="whole-image"` they are classified whole, and still counted; with
    `"second-look"` fainter faces are classified where found, counted in `second_look_files`).
    """
    check_mode(faces, fallback)
    check_photo_rule(rule)
    folder = split_folder(data_dir, "validation")
    found = discover_classes(folder)
    unknown = sorted(set(found) - set(model.class_names))
    if unknown:
        raise DataError(
            f"class folders {unknown} in {folder} are not classes of the model "
            f"({model.class_names})"
        )
    present = [name for name in model.class_names if name in found]
    files = list_split(folder, present)
    index_of = {name: model.class_names.index(name) for name in present}
    counts = {"no_face_files": 0, "second_look_files": 0, "multi_face_files": 0, "faces_found": 0}
    boxes: dict[str, list[list[int]]] = {}
    rows = _one_row_per_file(
        model,
        files.paths,
        batch_size,
        faces,
        fallback,
        margin,
        detector,
        counts,
        align,
        rule,
        boxes,
    )
    labels, probabilities, errors, read = [], [], [], []
    for row, label in zip(rows, files.labels):
        if row.error:
            errors.append({"path": row.path, "error": row.error})
            continue
        labels.append(index_of[present[label]])
        probabilities.append([row.probabilities[name] for name in model.class_names])
        read.append(row)
    if not labels:
        raise DataError(f"no image in {folder} could be evaluated")
    return LabelledPredictions(
        folder,
        np.array(labels),
        np.array(probabilities),
        errors,
        counts,
        [row.path for row in read],
        [getattr(row, "source", None) for row in read],
        boxes,
    )


def most_confident_mistakes(
    found: LabelledPredictions, class_names: list[str], count: int
) -> list[dict[str, Any]]:
    """The `count` wrongly read files the model was surest of (surest first): path, true and
    predicted class, confidence, how the file was read and the face boxes drawn from."""
    predicted = found.probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != found.labels)
    confidence = found.probabilities[wrong, predicted[wrong]]
    order = wrong[np.argsort(-confidence, kind="stable")][:count]
    return [
        {
            "path": found.paths[i],
            "true": class_names[found.labels[i]],
            "predicted": class_names[predicted[i]],
            "confidence": float(found.probabilities[i, predicted[i]]),
            "source": found.sources[i],
            "boxes": found.boxes.get(found.paths[i], []),
        }
        for i in order
    ]


def accuracy_by_source(found: LabelledPredictions) -> dict[str, dict[str, Any]]:
    """Files, correct answers and accuracy (with its 95% interval) for each way a file was read
    (`detector`: faces found; `crop`: used whole as a face crop; `second-look`; `whole-image`),
    so that a folder of photos shows where its mistakes are."""
    right = found.probabilities.argmax(axis=1) == found.labels
    out: dict[str, dict[str, Any]] = {}
    for source in dict.fromkeys(s for s in found.sources if s is not None):
        chosen = [i for i, s in enumerate(found.sources) if s == source]
        correct = int(right[chosen].sum())
        out[source] = {
            "files": len(chosen),
            "correct": correct,
            "accuracy": correct / len(chosen),
            "accuracy_ci95": wilson_interval(correct, len(chosen)),
        }
    return out


def format_by_source(metrics: dict[str, Any]) -> str:
    """The "read from" table of `accuracy_by_source` as `evaluate` prints it ("" without one)."""
    if not metrics.get("by_source"):
        return ""
    lines = ["", "", f"{'read from':<14}{'files':>8}{'accuracy':>10}"]
    for source, row in metrics["by_source"].items():
        lines.append(
            f"{SOURCE_NAMES.get(source, source):<14}{row['files']:>8d}{row['accuracy']:>10.4f}"
            + format_interval(row, "accuracy_ci95")
        )
    return "\n".join(lines)


def evaluate_export(
    model: Predictor,
    data_dir: Path,
    batch_size: int = 64,
    faces: FaceMode = "none",
    fallback: Fallback = "none",
    margin: float | None = None,
    detector: Detector | str | None = None,
    align: bool = False,
    rule: str = DEFAULT_PHOTO_RULE,
    mistakes: int = 0,
) -> dict[str, Any]:
    """Metrics of `model` on the images of `data_dir` (its validation split if it has one),
    including the expected calibration error of its confidences (10 bins); with `mistakes`,
    also that many of the most confident mistakes (`most_confident_mistakes`)."""
    from emotion_tf.calibration import expected_calibration_error

    found = predict_labelled(
        model, data_dir, batch_size, faces, fallback, margin, detector, align, rule
    )
    metrics = add_intervals(
        classification_metrics(found.labels, found.probabilities, model.class_names)
    )
    metrics.update(
        {
            "expected_calibration_error": expected_calibration_error(
                found.labels, found.probabilities
            ),
            "data_dir": str(found.folder),
            "model": str(model.path),
            "errors": found.errors,
            "skipped_files": len(found.errors),
        }
    )
    if mistakes:
        metrics["mistakes"] = most_confident_mistakes(found, model.class_names, mistakes)
    if faces != "none":
        name = getattr(resolve_detector(detector), "name", str(detector))
        metrics.update(
            {
                "faces": faces,
                "fallback": fallback,
                "detector": name,
                "align": align,
                "photo_rule": rule,
                **found.counts,
                "by_source": accuracy_by_source(found),
            }
        )
    return metrics
