"""Validation predictions of a Keras model, keeping the images of its most confident mistakes."""

from __future__ import annotations

import dataclasses
import heapq
from pathlib import Path
from typing import Any

import numpy as np

from emotion_tf.config import Config


@dataclasses.dataclass
class Mistake:
    image: np.ndarray  # uint8 [size, size, channels], as the model saw it
    true_index: int
    predicted_index: int
    confidence: float
    position: int  # index of the example in the validation order


@dataclasses.dataclass
class ValidationPredictions:
    labels: np.ndarray  # [N] true class indices
    probabilities: np.ndarray  # [N, classes]
    mistakes: list[Mistake]  # most confident first


def predict_validation(
    model: Any, split: Any, config: Config, keep: int = 16, batch_size: int = 64
) -> ValidationPredictions:
    """Run `model` over the validation `split` (files or TFRecords) in order."""
    import tensorflow as tf

    from emotion_tf.data.pipeline import decoded_examples

    dataset = decoded_examples(split, config.model.input_size, config.model.channels)
    dataset = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    labels, probabilities = [], []
    heap: list[tuple[float, int, Mistake]] = []
    position = 0
    for images, batch_labels in dataset:
        probs = np.asarray(model(tf.cast(images, tf.float32), training=False), dtype=np.float64)
        truth = batch_labels.numpy()
        predicted = probs.argmax(axis=1)
        for i in np.flatnonzero(predicted != truth):
            index = position + int(i)
            confidence = float(probs[i, predicted[i]])
            rank = (confidence, -index)  # ties: the earlier example wins
            if len(heap) >= keep and rank <= heap[0][:2]:
                continue
            mistake = Mistake(
                images[i].numpy(), int(truth[i]), int(predicted[i]), confidence, index
            )
            if len(heap) < keep:
                heapq.heappush(heap, (*rank, mistake))
            else:
                heapq.heapreplace(heap, (*rank, mistake))
        labels.append(truth)
        probabilities.append(probs)
        position += len(truth)
    if not labels:
        raise ValueError("the validation split produced no images")
    mistakes = [entry[2] for entry in sorted(heap, key=lambda e: (-e[0], -e[1]))]
    return ValidationPredictions(np.concatenate(labels), np.concatenate(probabilities), mistakes)


def validation_split(config: Config, run_info: dict[str, Any], data_dir: Path | None = None) -> Any:
    """The run's validation split (folders or TFRecords), found where the run was trained."""
    from emotion_tf.data.files import load_splits, scan_split
    from emotion_tf.data.tfrecord import is_tfrecord_dir, load_record_splits

    root = Path(data_dir or run_info.get("data_dir") or config.data.data_dir)
    if is_tfrecord_dir(root):
        return load_record_splits(root)["validation"]
    split, _ = scan_split(load_splits(root)["validation"], config.data.max_pixels)
    return split
