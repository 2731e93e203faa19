"""The one image-decoding path shared by training, export, predict and serving."""

from __future__ import annotations

import tensorflow as tf


def decode_image(image_bytes: tf.Tensor, channels: int) -> tf.Tensor:
    """Decode jpg/png/bmp/gif (first frame) bytes to uint8 [H, W, channels]."""
    image = tf.io.decode_image(
        image_bytes, channels=channels, expand_animations=False, dtype=tf.uint8
    )
    image.set_shape([None, None, channels])
    return image


def resize_uint8(image: tf.Tensor, size: int) -> tf.Tensor:
    """Resize to size x size (antialiased) and return uint8, so it can be cached compactly."""
    resized = tf.image.resize(image, [size, size], antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def bytes_to_model_input(image_bytes: tf.Tensor, size: int, channels: int) -> tf.Tensor:
    """Encoded image bytes to a uint8 [size, size, channels] tensor."""
    return resize_uint8(decode_image(image_bytes, channels), size)
