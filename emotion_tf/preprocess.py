"""The one image-decoding path shared by training, export, predict and serving."""

from __future__ import annotations

import re

import tensorflow as tf


def decode_image(image_bytes: tf.Tensor, channels: int) -> tf.Tensor:
    """Decode jpg/png/bmp/gif (first frame) bytes to uint8 [H, W, channels].

    Decodes in the file's own channel count (BMP and GIF decoders refuse others), drops any
    alpha channel, then converts gray <-> RGB.
    """
    image = tf.io.decode_image(image_bytes, channels=0, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, None])
    native = tf.shape(image)[-1]
    image = tf.cond(native < 3, lambda: image[..., :1], lambda: image[..., :3])
    if channels == 3:
        image = tf.cond(
            tf.shape(image)[-1] == 1, lambda: tf.image.grayscale_to_rgb(image), lambda: image
        )
    else:
        image = tf.cond(
            tf.shape(image)[-1] == 3, lambda: tf.image.rgb_to_grayscale(image), lambda: image
        )
    image.set_shape([None, None, channels])
    return image


def resize_uint8(image: tf.Tensor, size: int) -> tf.Tensor:
    """Resize to size x size (antialiased) and return uint8, so it can be cached compactly.

    An image that already has the size is passed through: the antialiased resize would return
    it unchanged, at a cost comparable to the small model's forward pass (benchmarks/).
    """

    def resize() -> tf.Tensor:
        resized = tf.image.resize(image, [size, size], antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)

    if image.dtype != tf.uint8:
        return resize()
    shape = tf.shape(image)
    same = tf.logical_and(tf.equal(shape[-3], size), tf.equal(shape[-2], size))
    result = tf.cond(same, lambda: image, resize)
    result.set_shape(image.shape[:-3].concatenate([size, size]).concatenate(image.shape[-1:]))
    return result


def bytes_to_model_input(image_bytes: tf.Tensor, size: int, channels: int) -> tf.Tensor:
    """Encoded image bytes to a uint8 [size, size, channels] tensor."""
    return resize_uint8(decode_image(image_bytes, channels), size)


_TF_NOISE = re.compile(r"\{\{[^}]*\}\}|\[\[[^\]]*\]\]|\[Op:[^\]]*\]")
_NOT_A_REASON = ("Graph execution error", "Detected at node", "<stack traces", "File ")


def decode_error_reason(err: Exception) -> str:
    """Why TF could not decode an image, without its graph wording ("Graph execution error").

    'jpeg::Uncompress failed. Invalid JPEG data or crop window.' -> 'invalid JPEG data
    (truncated or corrupt)'; other messages lose only their node and op decorations.
    """
    text = _TF_NOISE.sub("", getattr(err, "message", None) or str(err))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reasons = [line for line in lines if not line.startswith(_NOT_A_REASON)]
    reason = reasons[0] if reasons else type(err).__name__
    if "jpeg::Uncompress failed" in reason or reason.startswith("Invalid JPEG data"):
        return "invalid JPEG data (truncated or corrupt)"
    return re.sub(r"^Invalid (PNG|GIF|BMP) data", r"invalid \1 data", reason)[:200]
