"""The one evaluation path: a Keras model on a split, and any model on a folder.

`predict_split` is what `train` writes to metrics.json and what the report recomputes: the same
images in the same order, with the run's test-time flip. `evaluate_export` runs any model
backend (SavedModel export, packaged model, TFLite file, run checkpoint; each applies the same
flip) for `emotion-tf evaluate`.
"""

from __future__ import annotations

import dataclasses
import heapq
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from emotion_tf.config import Config
from emotion_tf.data.files import discover_classes, list_split, split_folder
from emotion_tf.data.pipeline import Split, decoded_examples
from emotion_tf.errors import DataError
from emotion_tf.faces.locate import (
    SOURCE_DETECTOR,
    SOURCE_FALLBACK,
    SOURCE_NAMES,
    SOURCE_SECOND_LOOK,
    resolve_detector,
)
from emotion_tf.metrics import (
    add_intervals,
    classification_metrics,
    format_interval,
    risk_coverage,
    wilson_interval,
)
from emotion_tf.pipeline.options import DEFAULT_OPTIONS, PhotoOptions
from emotion_tf.predict import predict_photos
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
    no_face: list[str] = dataclasses.field(default_factory=list)  # read, no face (not scored)


def predict_labelled(
    model: Predictor,
    data_dir: Path,
    options: PhotoOptions | None = None,
    **changes: Any,
) -> LabelledPredictions:
    """`model`'s probabilities on the images of `data_dir` (its validation split if it has
    one), every photo through the photo pipeline (`options`, default: the pipeline's defaults;
    `changes`: PhotoOptions fields to change, e.g. `faces="none"`).

    Every file gets one answer from all its faces (the photo rule); a file that cannot be read
    is listed in `errors`; a photo without a face (only with `fallback="none"`) is counted in
    `no_face_files` and listed in `no_face`, not scored.
    """
    options = (options or DEFAULT_OPTIONS).replace(**changes)
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
    labels, probabilities, errors, no_face, read = [], [], [], [], []
    answers = predict_photos(model, files.paths, options)
    for answer, label in zip(answers, files.labels):
        if answer.error is not None:
            errors.append({"path": answer.name, "error": answer.error})
            continue
        if answer.no_face or answer.source in (SOURCE_FALLBACK, SOURCE_SECOND_LOOK):
            counts["no_face_files"] += 1
        counts["second_look_files"] += answer.source == SOURCE_SECOND_LOOK
        counts["multi_face_files"] += answer.face_count > 1
        counts["faces_found"] += answer.face_count if options.faces != "none" else 0
        found_boxes = [
            f.box for f in answer.faces if f.source in (SOURCE_DETECTOR, SOURCE_SECOND_LOOK)
        ]
        if found_boxes:
            boxes[answer.name] = found_boxes
        if answer.no_face:
            no_face.append(answer.name)
            continue
        labels.append(index_of[present[label]])
        probabilities.append([answer.probabilities[name] for name in model.class_names])
        read.append(answer)
    if not labels:
        raise DataError(f"no image in {folder} could be evaluated")
    return LabelledPredictions(
        folder,
        np.array(labels),
        np.array(probabilities),
        errors,
        counts,
        [answer.name for answer in read],
        [answer.source for answer in read],
        boxes,
        no_face,
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


def abstaining(found: LabelledPredictions, bar: float) -> dict[str, Any]:
    """Coverage and accuracy when photos answered below `bar` are labelled "unclear"."""
    kept = found.probabilities.max(axis=1) >= bar
    right = found.probabilities.argmax(axis=1) == found.labels
    correct = int(right[kept].sum())
    count = int(kept.sum())
    return {
        "min_confidence": bar,
        "coverage": count / len(kept),
        "unclear": int(len(kept) - count),
        "accuracy": correct / count if count else None,
        "accuracy_ci95": wilson_interval(correct, count),
    }


def evaluate_export(
    model: Predictor,
    data_dir: Path,
    options: PhotoOptions | None = None,
    mistakes: int = 0,
    **changes: Any,
) -> dict[str, Any]:
    """Metrics of `model` on the images of `data_dir` (its validation split if it has one),
    every photo read by the photo pipeline (`predict_labelled`), including the expected
    calibration error of its confidences (10 bins); with `mistakes`, also that many of the
    most confident mistakes (`most_confident_mistakes`)."""
    return evaluate_photos(
        model, data_dir, (options or DEFAULT_OPTIONS).replace(**changes), mistakes
    )[0]


def evaluate_photos(
    model: Predictor, data_dir: Path, options: PhotoOptions, mistakes: int = 0
) -> tuple[dict[str, Any], LabelledPredictions]:
    """`evaluate_export`'s metrics and the per-photo predictions they were made from."""
    from emotion_tf.calibration import expected_calibration_error

    found = predict_labelled(model, data_dir, options)
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
            "no_face": found.no_face,
            "risk_coverage": risk_coverage(found.labels, found.probabilities),
            "photos": len(found.labels) + len(found.errors) + len(found.no_face),
        }
    )
    if mistakes:
        metrics["mistakes"] = most_confident_mistakes(found, model.class_names, mistakes)
    if options.min_confidence is not None:
        metrics["abstaining"] = abstaining(found, options.min_confidence)
    if options.faces != "none":
        name = getattr(resolve_detector(options.detector), "name", str(options.detector))
        metrics.update(
            {
                "faces": options.faces,
                "fallback": options.fallback,
                "detector": name,
                "align": options.align,
                "photo_rule": options.rule,
                **found.counts,
                "by_source": accuracy_by_source(found),
            }
        )
    return metrics, found
