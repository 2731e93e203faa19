"""Training-only augmentation as a Keras layer stack, applied to batches inside tf.data."""

from __future__ import annotations

import keras

from emotion_tf.config import AugmentConfig


def build_augmenter(config: AugmentConfig, seed: int) -> keras.Sequential | None:
    """The configured random transforms, or None when every one is switched off."""
    layers: list[keras.layers.Layer] = []
    if config.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed, name="flip"))
    if config.rotation:
        layers.append(keras.layers.RandomRotation(config.rotation, fill_mode="reflect",
                                                  seed=seed + 1, name="rotation"))
    if config.zoom:
        layers.append(keras.layers.RandomZoom(config.zoom, fill_mode="reflect", seed=seed + 2,
                                              name="zoom"))
    if config.translation:
        layers.append(keras.layers.RandomTranslation(config.translation, config.translation,
                                                     fill_mode="reflect", seed=seed + 3,
                                                     name="translation"))
    if config.brightness:
        layers.append(keras.layers.RandomBrightness(config.brightness, value_range=(0, 255),
                                                    seed=seed + 4, name="brightness"))
    if config.contrast:
        layers.append(keras.layers.RandomContrast(config.contrast, value_range=(0, 255),
                                                  seed=seed + 5, name="contrast"))
    if not layers:
        return None
    return keras.Sequential(layers, name="augment")
