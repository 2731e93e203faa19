"""Mixup: seeded blends of image pairs and of their labels, in the training pipeline only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from emotion_tf.config import load_config
from emotion_tf.data.files import load_splits
from emotion_tf.data.mixup import mixup
from emotion_tf.data.pipeline import build_dataset, training_epochs
from emotion_tf.errors import ConfigError

NO_AUGMENT = [
    "data.augment.flip=false",
    "data.augment.rotation=0",
    "data.augment.zoom=0",
    "data.augment.translation=0",
    "data.augment.brightness=0",
    "data.augment.contrast=0",
]


@pytest.fixture
def flat_data(tmp_path: Path) -> Path:
    """train/ and validation/ with 4 flat grey PNGs per class: happy dark, sad bright."""
    for split in ("train", "validation"):
        for name, value in (("happy", 20), ("sad", 220)):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            for i in range(4):
                pixels = np.full((16, 16), value + i, dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return tmp_path


def test_images_and_labels_are_blended_by_the_same_weight() -> None:
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (8, 6, 6, 1)).astype(np.float32)
    labels = np.eye(2, dtype=np.float32)[[0, 1, 0, 1, 1, 1, 0, 0]]
    mixed, soft = (t.numpy() for t in mixup(images, labels, 0.4, tf.constant([3, 4], tf.int64)))
    # Recover each example's weight from its label, then check the image used the same one.
    partner = labels[::-1]
    for i in range(8):
        if (labels[i] == partner[i]).all():
            np.testing.assert_allclose(soft[i], labels[i], atol=1e-6)
            continue
        weight = soft[i] @ labels[i]
        np.testing.assert_allclose(
            mixed[i], weight * images[i] + (1 - weight) * images[::-1][i], rtol=1e-4, atol=1e-3
        )
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-6)
    assert ((soft > 0.01) & (soft < 0.99)).any()  # some labels really are soft


def test_same_seed_same_blend_other_seed_other_blend() -> None:
    images = tf.random.stateless_uniform([6, 4, 4, 1], seed=[0, 0], maxval=255.0)
    labels = tf.one_hot([0, 0, 0, 1, 1, 1], 2)
    first = mixup(images, labels, 0.4, tf.constant([1, 2], tf.int64))[1].numpy()
    again = mixup(images, labels, 0.4, tf.constant([1, 2], tf.int64))[1].numpy()
    other = mixup(images, labels, 0.4, tf.constant([1, 3], tf.int64))[1].numpy()
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-3


def test_pipeline_mixes_training_batches_only(flat_data: Path) -> None:
    files = load_splits(flat_data)
    config = load_config(
        None,
        [
            "model.input_size=16",
            "model.channels=1",
            "data.batch_size=8",
            "data.augment.mixup=0.4",
            *NO_AUGMENT,
        ],
    )
    train, _ = training_epochs(files["train"], config)
    images, labels = next(iter(train))
    labels = labels.numpy()
    assert ((labels > 0.01) & (labels < 0.99)).any()
    # Flat images: a blend's brightness sits where its label says between the two classes.
    brightness = images.numpy().mean(axis=(1, 2, 3))
    expected = labels[:, 0] * 21.5 + labels[:, 1] * 221.5
    np.testing.assert_allclose(brightness, expected, atol=2.0)
    for _, val_labels in build_dataset(files["validation"], config, training=False):
        assert set(np.unique(val_labels.numpy())) <= {0.0, 1.0}


def test_mixup_off_keeps_one_hot_labels(flat_data: Path) -> None:
    files = load_splits(flat_data)["train"]
    config = load_config(None, ["model.input_size=16", "data.batch_size=8", *NO_AUGMENT])
    _, labels = next(iter(training_epochs(files, config)[0]))
    assert set(np.unique(labels.numpy())) <= {0.0, 1.0}


def test_negative_alpha_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="data.augment.mixup"):
        load_config(None, ["data.augment.mixup=-0.2"])
