"""Run an in-memory Keras AlexNet (a run's checkpoint or the packaged model) like an export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from emotion_tf.predictors.outputs import apply_temperature, outputs_from_probabilities
from emotion_tf.preprocess import bytes_to_model_input, resize_uint8


class KerasPredictor:
    """`predict_images` / `predict_bytes` over a Keras model, with the export's preprocessing:
    resize to the model's input, optional mirror-image averaging, optional temperature."""

    def __init__(
        self,
        model: Any,
        class_names: list[str],
        path: Path,
        test_time_flip: bool = False,
        temperature: float = 1.0,
        metadata: dict[str, Any] | None = None,
    ):
        _, height, _, channels = model.input_shape
        self.model = model
        self.class_names = list(class_names)
        self.path = Path(path)
        self.input_size = int(height)
        self.channels = int(channels)
        self.test_time_flip = bool(test_time_flip)
        self.temperature = float(temperature)
        self.metadata = dict(metadata or {})
        self._forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    @property
    def has_one_view(self) -> bool:
        """Whether `predict_one_view` skips a mirror pass (the model averages with one)."""
        return self.test_time_flip

    def probabilities(self, images: np.ndarray, flip: bool | None = None) -> np.ndarray:
        """Model probabilities for uint8 [N, size, size, C] images (before temperature);
        `flip` overrides the mirror-image average."""
        images = tf.cast(tf.convert_to_tensor(images), tf.float32)
        result = tf.cast(self._forward(images), tf.float32)
        if self.test_time_flip if flip is None else flip:
            mirrored = tf.cast(self._forward(tf.reverse(images, axis=[2])), tf.float32)
            result = (result + mirrored) / 2.0
        return result.numpy()

    def predict_images(self, images: Any, flip: bool | None = None) -> dict[str, Any]:
        images = resize_uint8(tf.convert_to_tensor(images, tf.uint8), self.input_size)
        if images.shape[0] == 0:
            return outputs_from_probabilities(
                np.zeros((0, len(self.class_names))), self.class_names
            )
        probabilities = apply_temperature(self.probabilities(images, flip), self.temperature)
        return outputs_from_probabilities(probabilities, self.class_names)

    def predict_one_view(self, images: Any) -> dict[str, Any]:
        """Like `predict_images` with one forward pass: no mirror-image average."""
        return self.predict_images(images, flip=False)

    def predict_bytes(self, blobs: list[bytes]) -> dict[str, Any]:
        """Raises tf.errors.InvalidArgumentError when a blob cannot be decoded (like the export)."""
        images = [
            bytes_to_model_input(tf.constant(blob), self.input_size, self.channels)
            for blob in blobs
        ]
        stacked = (
            tf.stack(images)
            if images
            else np.zeros((0, self.input_size, self.input_size, self.channels), np.uint8)
        )
        return self.predict_images(stacked)
