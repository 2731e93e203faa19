"""TensorBoard image summaries of augmented training images, so users see what augmentation does.

Keras' TensorBoard callback already logs the loss and accuracy scalars. This callback adds, at
the start of training, a few training images as decoded (`augmentation/original`) and the same
images through the configured augmentation (`augmentation/augmented`, one step per random draw).
It uses its own augmenter and file list, so the training data stream is left untouched.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import keras
import numpy as np

from emotion_tf.config import Config

log = logging.getLogger(__name__)

SUMMARY_DIR = "augmentation"


class AugmentationPreview(keras.callbacks.Callback):
    """Log `count` training images and `draws` augmented versions of them to TensorBoard."""

    def __init__(
        self,
        log_dir: Path,
        split: Any,
        config: Config,
        count: int = 8,
        draws: int = 3,
        enabled: bool = True,
    ):
        super().__init__()
        self.log_dir = Path(log_dir) / SUMMARY_DIR
        self.split = split
        self.config = config
        self.count = count
        self.draws = draws
        self.enabled = enabled

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self.enabled:
            return
        try:
            self.write()
        except Exception as err:  # a preview must never stop training
            log.warning(
                "TensorBoard augmentation preview skipped (%s: %s)", type(err).__name__, err
            )

    def sample(self) -> np.ndarray:
        """uint8 [count, size, size, channels] training images, spread over the classes."""
        import dataclasses

        from emotion_tf.data.pipeline import decoded_examples

        split = self.split
        paths = getattr(split, "paths", None)
        if paths is not None:  # a folder split: decode only the chosen files
            picks = np.linspace(0, len(paths) - 1, num=min(self.count, len(paths)))
            picks = sorted({int(i) for i in np.rint(picks)})
            orientations = split.orientation_list()
            split = dataclasses.replace(
                split,
                paths=[paths[i] for i in picks],
                labels=[split.labels[i] for i in picks],
                orientations=[orientations[i] for i in picks],
            )
        size, channels = self.config.model.input_size, self.config.model.channels
        dataset = decoded_examples(split, size, channels).take(self.count)
        return np.stack([image.numpy() for image, _ in dataset])

    def write(self) -> None:
        import tensorflow as tf

        from emotion_tf.data.augment import build_augmenter

        originals = self.sample()
        augmenter = build_augmenter(self.config.data.augment)
        writer = tf.summary.create_file_writer(str(self.log_dir))
        with writer.as_default():
            tf.summary.image(
                "augmentation/original",
                originals,
                step=0,
                max_outputs=self.count,
                description="Training images as decoded and resized.",
            )
            for draw in range(self.draws if augmenter is not None else 0):
                seed = tf.constant([self.config.train.seed + 7919, draw], tf.int64)
                augmented = augmenter(tf.cast(originals, tf.float32), seed)
                pixels = tf.cast(tf.clip_by_value(tf.round(augmented), 0, 255), tf.uint8)
                tf.summary.image(
                    "augmentation/augmented",
                    pixels,
                    step=draw,
                    max_outputs=self.count,
                    description="The same images after training augmentation "
                    "(one step per random draw).",
                )
        writer.flush()
        writer.close()
