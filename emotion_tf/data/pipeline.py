"""tf.data input pipelines: read, decode, resize, cache, shuffle, batch, augment, prefetch."""

from __future__ import annotations

import tensorflow as tf

from emotion_tf.config import Config
from emotion_tf.data.augment import build_augmenter
from emotion_tf.data.files import LabelledFiles
from emotion_tf.preprocess import bytes_to_model_input

AUTOTUNE = tf.data.AUTOTUNE


def decoded_images(paths: list[str], size: int, channels: int) -> tf.data.Dataset:
    """uint8 [size, size, channels] images of `paths`, decoded in parallel, in order."""
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(paths, tf.string))
    return dataset.map(
        lambda path: bytes_to_model_input(tf.io.read_file(path), size, channels),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )


def build_dataset(
    files: LabelledFiles,
    config: Config,
    training: bool,
    num_replicas: int = 1,
) -> tf.data.Dataset:
    """Batches of (float32 images in 0-255, one-hot labels) for `fit` or `evaluate`."""
    num_classes = len(files.class_names)
    images = decoded_images(files.paths, config.model.input_size, config.model.channels)
    labels = tf.data.Dataset.from_tensor_slices(tf.constant(files.labels, tf.int32))
    dataset = tf.data.Dataset.zip((images, labels))
    if config.data.cache:
        dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(
            min(config.data.shuffle_buffer, len(files.paths)),
            seed=config.train.seed,
            reshuffle_each_iteration=True,
        )
    # Several replicas crash oneDNN on a last batch smaller than the replica count.
    drop_remainder = num_replicas > 1
    dataset = dataset.batch(config.data.batch_size, drop_remainder=drop_remainder)

    augmenter = build_augmenter(config.data.augment, config.train.seed) if training else None

    def to_model(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.cast(image, tf.float32)
        if augmenter is not None:
            image = augmenter(image, training=True)
        return image, tf.one_hot(label, num_classes)

    dataset = dataset.map(to_model, num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)
