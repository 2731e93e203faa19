"""The first release's augmentation: the peer the fused augmenter is measured against.

A chain of six Keras random layers: flip, rotation, zoom and translation each resample the batch
with their own projective warp, and brightness and contrast each make another pass.
`emotion_tf.data.augment.Augmenter` draws the same kinds of random parameters and applies them as
one warp and one multiply-add. The benchmarks patch this stack into the pipeline
(`train_throughput.py --augment keras`) or time it beside the shipped one (`input_pipeline.py`).
"""

from __future__ import annotations

from typing import Any

import keras


class KerasLayerAugment:
    """Callable like `emotion_tf.data.augment.Augmenter`; the seed is ignored (stateful layers)."""

    def __init__(self, layers: list[keras.layers.Layer]):
        self.layers = keras.Sequential(layers, name="augment_keras")

    def __call__(self, images: Any, seed: Any = None) -> Any:
        del seed
        return self.layers(images, training=True)


def keras_layers(config: Any) -> list[keras.layers.Layer]:
    """The configured Keras random layers, in the order the first release applied them."""
    layers: list[keras.layers.Layer] = []
    if config.flip:
        layers.append(keras.layers.RandomFlip("horizontal"))
    if config.rotation:
        layers.append(keras.layers.RandomRotation(config.rotation, fill_mode="reflect"))
    if config.zoom:
        layers.append(keras.layers.RandomZoom(config.zoom, fill_mode="reflect"))
    if config.translation:
        layers.append(
            keras.layers.RandomTranslation(
                config.translation, config.translation, fill_mode="reflect"
            )
        )
    if config.brightness:
        layers.append(keras.layers.RandomBrightness(config.brightness, value_range=(0, 255)))
    if config.contrast:
        layers.append(keras.layers.RandomContrast(config.contrast, value_range=(0, 255)))
    return layers


def build_keras_augmenter(config: Any) -> KerasLayerAugment | None:
    """Drop-in for `emotion_tf.data.augment.build_augmenter`; None when nothing is configured."""
    layers = keras_layers(config)
    return KerasLayerAugment(layers) if layers else None
