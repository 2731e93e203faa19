"""tf.data input pipelines: read, decode, cache, shuffle, batch, augment, prefetch.

Every random choice of a training epoch (shuffle order, augmentation) is a pure function of
`train.seed` and the epoch number, so a run resumed from a backup after epoch k sees exactly
the data an uninterrupted run would have seen in epochs k+1, k+2, ...
"""

from __future__ import annotations

import logging
import os
from typing import Union

import tensorflow as tf

from emotion_tf.config import Config
from emotion_tf.data.augment import build_augmenter
from emotion_tf.data.files import LabelledFiles, read_first_frame
from emotion_tf.data.mixup import mixup
from emotion_tf.data.orientation import apply_orientation
from emotion_tf.data.tfrecord import RecordSplit, read_records, training_order
from emotion_tf.preprocess import decode_image, resize_uint8

AUTOTUNE = tf.data.AUTOTUNE
Split = Union[LabelledFiles, RecordSplit]  # noqa: UP007 (a runtime alias)
_EPOCH_SEED_STRIDE = 1_000_003  # keeps the per-epoch shuffle seeds of nearby seeds apart

log = logging.getLogger(__name__)


def num_examples(split: Split) -> int:
    return sum(split.counts().values())


def encoded_examples(split: Split, order_seed: int | None = None) -> tf.data.Dataset:
    """(encoded image bytes, label, EXIF orientation) for every example, in a fixed order.

    With `order_seed`, folder examples come in one seeded random order instead of sorted by
    class, so that a shuffle buffer smaller than the data set still mixes the classes.
    """
    if isinstance(split, RecordSplit):
        if order_seed is not None and split.order_seed != order_seed:
            log.info(
                "TFRecords store their examples in the order of seed %s (this run asks for %s); "
                "shuffling still mixes them, but results differ from the folder form",
                split.order_seed,
                order_seed,
            )
        return read_records(split)
    order = training_order(len(split.paths), order_seed)
    orientation_list = split.orientation_list()
    # os.fsencode: names that are not UTF-8 must reach TF as their original bytes.
    paths = tf.constant([os.fsencode(split.paths[i]) for i in order], tf.string)
    labels = tf.constant([split.labels[i] for i in order], tf.int32)
    orientations = tf.constant([orientation_list[i] for i in order], tf.int32)
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels, orientations))
    animated_list = split.animated_list()
    if not any(animated_list):
        return dataset.map(
            lambda path, label, orientation: (tf.io.read_file(path), label, orientation),
            num_parallel_calls=AUTOTUNE,
            deterministic=True,
        )
    # TF's GIF decoder decompresses every frame and its WebP decoder breaks on animations:
    # the few files the scan flagged as animated are read cut to their first frame, in Python.
    animated = tf.constant([animated_list[i] for i in order], tf.bool)
    dataset = tf.data.Dataset.zip(dataset, tf.data.Dataset.from_tensor_slices(animated))
    return dataset.map(_read_example, num_parallel_calls=AUTOTUNE, deterministic=True)


def _read_example(
    example: tuple[tf.Tensor, tf.Tensor, tf.Tensor], animated: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    path, label, orientation = example
    data = tf.cond(
        animated,
        lambda: tf.reshape(tf.numpy_function(read_first_frame, [path], tf.string), []),
        lambda: tf.io.read_file(path),
    )
    return data, label, orientation


def decoded_examples(
    split: Split, size: int, channels: int, order_seed: int | None = None
) -> tf.data.Dataset:
    """(uint8 [size, size, channels] upright image, label), decoded in parallel, in order.

    The data scan has already left out files that do not decode; a file that breaks after the
    scan (changed or deleted during training) is dropped with a logged warning instead of
    stopping the run mid-epoch.
    """

    def decode(data: tf.Tensor, label: tf.Tensor, orientation: tf.Tensor):
        image = apply_orientation(decode_image(data, channels), orientation)
        return resize_uint8(image, size), label

    dataset = encoded_examples(split, order_seed).map(
        decode, num_parallel_calls=AUTOTUNE, deterministic=True
    )
    return dataset.ignore_errors(log_warning=True)


def decoded_images(paths: list[str], size: int, channels: int) -> tf.data.Dataset:
    """uint8 [size, size, channels] images of `paths`, decoded in parallel, in order."""
    files = LabelledFiles(["any"], list(paths), [0] * len(paths))
    return decoded_examples(files, size, channels).map(lambda image, _: image)


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(seed) * _EPOCH_SEED_STRIDE + int(epoch)


class _Augment:
    """The configured augmenter and mixup, seeded per batch from (train.seed, epoch, batch).

    The draws are stateless, so a resumed run augments batch b of epoch e exactly as an
    uninterrupted one, and batches can be augmented in parallel.
    """

    def __init__(self, config: Config):
        self.augmenter = build_augmenter(config.data.augment)
        self.mixup_alpha = config.data.augment.mixup
        self.seed = config.train.seed

    @property
    def active(self) -> bool:
        return self.augmenter is not None or self.mixup_alpha > 0

    def __call__(
        self, images: tf.Tensor, labels: tf.Tensor, epoch: tf.Tensor, batch: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        counter = tf.cast(epoch, tf.int64) * (1 << 32) + tf.cast(batch, tf.int64)
        seed = tf.stack([tf.constant(self.seed, tf.int64), counter])
        if self.augmenter is not None:
            images = self.augmenter(images, seed)
        if self.mixup_alpha > 0:
            mix_seed = tf.random.experimental.stateless_fold_in(seed, 1)
            images, labels = mixup(images, labels, self.mixup_alpha, mix_seed)
        return images, labels


def _to_model(num_classes: int):
    def convert(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.cast(image, tf.float32), tf.one_hot(label, num_classes)

    return convert


def _cached_examples(split: Split, config: Config, training: bool = False) -> tf.data.Dataset:
    order_seed = config.train.seed if training else None
    dataset = decoded_examples(split, config.model.input_size, config.model.channels, order_seed)
    return dataset.cache() if config.data.cache else dataset


def _training_epoch(
    examples: tf.data.Dataset,
    config: Config,
    num_classes: int,
    count: int,
    drop_remainder: bool,
    augment: _Augment,
    epoch: int,
) -> tf.data.Dataset:
    """One epoch of augmented training batches, shuffled by (seed, epoch)."""
    dataset = examples.shuffle(
        min(config.data.shuffle_buffer, max(count, 1)),
        seed=_epoch_seed(config.train.seed, epoch),
        reshuffle_each_iteration=False,
    )
    dataset = dataset.batch(config.data.batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(_to_model(num_classes), num_parallel_calls=AUTOTUNE)
    if not augment.active:
        return dataset
    return dataset.enumerate().map(
        lambda batch, pair: augment(pair[0], pair[1], epoch, batch),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )


def build_dataset(
    files: Split,
    config: Config,
    training: bool,
    num_replicas: int = 1,
    epoch: int = 0,
) -> tf.data.Dataset:
    """Batches of (float32 images in 0-255, one-hot labels) for one pass: `fit` or `evaluate`.

    `training` shuffles and augments as in epoch `epoch` of `training_epochs`.
    """
    num_classes = len(files.class_names)
    examples = _cached_examples(files, config, training)
    # Several replicas crash oneDNN on a last batch smaller than the replica count.
    drop_remainder = num_replicas > 1
    if training:
        augment = _Augment(config)
        dataset = _training_epoch(
            examples, config, num_classes, num_examples(files), drop_remainder, augment, epoch
        )
    else:
        dataset = examples.batch(config.data.batch_size, drop_remainder=drop_remainder)
        dataset = dataset.map(_to_model(num_classes), num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)


def unaugmented_training_batches(files: Split, config: Config) -> tf.data.Dataset:
    """Training batches in one seeded random order, without augmentation or mixup.

    For statistics of the training images as they are, such as BatchNorm's after weight
    averaging; the random order mixes the classes even when only a few batches are read.
    """
    size, channels = config.model.input_size, config.model.channels
    dataset = decoded_examples(files, size, channels, order_seed=config.train.seed)
    dataset = dataset.batch(config.data.batch_size)
    return dataset.map(_to_model(len(files.class_names)), num_parallel_calls=AUTOTUNE)


def training_epochs(
    files: Split,
    config: Config,
    num_replicas: int = 1,
    first_epoch: int = 0,
) -> tuple[tf.data.Dataset, int]:
    """Training batches for epochs `first_epoch` .. `train.epochs - 1`, back to back.

    Returns the dataset and the number of batches per epoch (pass it to `fit` as
    `steps_per_epoch`, so Keras keeps one iterator across epochs).
    """
    num_classes = len(files.class_names)
    count = num_examples(files)
    drop_remainder = num_replicas > 1
    batch = config.data.batch_size
    steps = count // batch if drop_remainder else -(-count // batch)
    examples = _cached_examples(files, config, training=True)
    augment = _Augment(config)

    # One dataset per epoch with the epoch as a Python number, concatenated: with a symbolic
    # epoch (Dataset.range + flat_map), TensorFlow compares the shuffle seed to 0 in Python
    # and fails whenever the program's global seed is 0 (tf.random.set_seed(0)).
    def epoch_batches(epoch: int) -> tf.data.Dataset:
        return _training_epoch(examples, config, num_classes, count, drop_remainder, augment, epoch)

    dataset = epoch_batches(first_epoch).take(0)  # empty when no epoch is left
    for epoch in range(first_epoch, config.train.epochs):
        dataset = dataset.concatenate(epoch_batches(epoch))
    # repeat(): should a file break mid-run, later epochs borrow a batch rather than run dry.
    return dataset.repeat().prefetch(AUTOTUNE), steps


def validation_passes(
    files: Split, config: Config, num_replicas: int = 1
) -> tuple[tf.data.Dataset, int]:
    """The validation batches repeated without end, and the number of batches in one pass.

    Pass both to `fit` (`validation_steps`): Keras then keeps one iterator, and every
    validation pass sees the same batches even if a file breaks during the run.
    """
    count = num_examples(files)
    batch = config.data.batch_size
    steps = count // batch if num_replicas > 1 else -(-count // batch)
    dataset = build_dataset(files, config, False, num_replicas).repeat()
    # Keras drops its validation iterator after every pass. With autotuning on, destroying it
    # waits for tf.data's tuning thread: 5-15 s of idle CPU in about half the epochs (measured
    # on the FER recipe: epochs of 41 s instead of 26 s). Without it the pass is as fast.
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options), steps
