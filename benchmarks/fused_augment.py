"""A prototype of cheaper training augmentation, to measure what the Keras layer stack costs.

`emotion_tf.data.augment.build_augmenter` chains six Keras layers; three of them (rotation,
zoom, translation) each resample the whole batch with their own projective warp, and flip,
brightness and contrast each make another pass. `FusedAugment` draws the same kinds of random
parameters and applies them as ONE projective warp per image (flip, rotation, zoom and
translation composed into a single matrix) and ONE affine colour step (brightness and contrast
folded into a multiply-add). The benchmarks use it to show how much of the end-to-end gap the
augmentation accounts for; it is not wired into the package.
"""

from __future__ import annotations

import math
from typing import Any

import tensorflow as tf


class FusedAugment:
    """Batch augmentation with the semantics of the configured Keras layers, fused.

    `layers` is empty so that code expecting a `keras.Sequential` finds no seed generators.
    """

    def __init__(self, config: Any, warp_uint8: bool = False, interpolation: str = "BILINEAR"):
        self.config = config
        self.warp_uint8 = warp_uint8
        self.interpolation = interpolation
        self.layers: list[Any] = []

    def _warp_matrices(self, batch: tf.Tensor, height: int, width: int) -> tf.Tensor:
        cfg = self.config
        angle = tf.random.uniform([batch], -1.0, 1.0) * (cfg.rotation * 2.0 * math.pi)
        zoom = 1.0 + tf.random.uniform([batch], -1.0, 1.0) * cfg.zoom
        shift_x = tf.random.uniform([batch], -1.0, 1.0) * (cfg.translation * width)
        shift_y = tf.random.uniform([batch], -1.0, 1.0) * (cfg.translation * height)
        if cfg.flip:
            sign = tf.where(tf.random.uniform([batch]) < 0.5, -1.0, 1.0)
        else:
            sign = tf.ones([batch])
        cos, sin = tf.cos(angle), tf.sin(angle)
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        # Output pixel p samples the input at centre + zoom * R(angle) * flip * (p - centre) - t.
        a0, a1 = zoom * cos * sign, -zoom * sin
        b0, b1 = zoom * sin * sign, zoom * cos
        a2 = cx - a0 * cx - a1 * cy - shift_x
        b2 = cy - b0 * cx - b1 * cy - shift_y
        zeros = tf.zeros([batch])
        return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)

    def __call__(self, images: tf.Tensor, training: bool = True) -> tf.Tensor:
        with tf.name_scope("augment_fused"):  # profiling.py files ops under "augment"
            return self._augment(images)

    def _augment(self, images: tf.Tensor) -> tf.Tensor:
        cfg = self.config
        shape = tf.shape(images)
        batch = shape[0]
        height, width = int(images.shape[1]), int(images.shape[2])
        if self.warp_uint8:
            images = tf.cast(tf.clip_by_value(tf.round(images), 0, 255), tf.uint8)
        if cfg.flip or cfg.rotation or cfg.zoom or cfg.translation:
            images = tf.raw_ops.ImageProjectiveTransformV3(
                images=images,
                transforms=self._warp_matrices(batch, height, width),
                output_shape=tf.constant([height, width], tf.int32),
                fill_value=tf.constant(0.0),
                interpolation=self.interpolation,
                fill_mode="REFLECT",
            )
        images = tf.cast(images, tf.float32)
        if cfg.brightness or cfg.contrast:
            delta = tf.random.uniform([batch, 1, 1, 1], -1.0, 1.0) * (cfg.brightness * 255.0)
            factor = 1.0 + tf.random.uniform([batch, 1, 1, 1], -1.0, 1.0) * cfg.contrast
            mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
            # (x + delta - (mean + delta)) * factor + mean + delta, as one multiply-add.
            images = tf.clip_by_value(images * factor + (mean * (1.0 - factor) + delta), 0, 255)
        return images


def build_fused_augmenter(config: Any, seed: int, warp_uint8: bool = False) -> FusedAugment | None:
    """Drop-in for `build_augmenter` (same arguments); None when everything is switched off."""
    del seed  # the prototype draws from TF's global generator
    if not (
        config.flip
        or config.rotation
        or config.zoom
        or config.translation
        or config.brightness
        or config.contrast
    ):
        return None
    return FusedAugment(config, warp_uint8)
