"""Training-only augmentation of image batches inside tf.data, drawn from a stateless seed.

Flip, rotation, zoom and translation are composed into one projective warp per image, and
brightness and contrast into one multiply-add, so each batch is resampled once. (A chain of
Keras random layers resamples it once per geometric layer and costs 2.3-2.6x the CPU:
`benchmarks/input_pipeline.py`.) Every draw is a pure function of the seed passed in, so a
batch is augmented the same way after a resume and parallel calls cannot disturb each other.
"""

from __future__ import annotations

import math

import tensorflow as tf

from emotion_tf.config import AugmentConfig

# Columns of the per-image uniform(-1, 1) draws.
_ANGLE, _ZOOM, _SHIFT_X, _SHIFT_Y, _FLIP, _BRIGHTNESS, _CONTRAST = range(7)


class Augmenter:
    """Random transforms of float32 [N, H, W, C] batches with pixel values in 0-255."""

    def __init__(self, config: AugmentConfig):
        self.config = config
        self.warps = bool(config.rotation or config.zoom or config.translation)
        self.recolours = bool(config.brightness or config.contrast)

    def __call__(self, images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """`images` augmented with draws from `seed` (int64 [2]); same seed, same result."""
        with tf.name_scope("augment"):
            draws = tf.random.stateless_uniform(
                [tf.shape(images)[0], 7], seed=seed, minval=-1.0, maxval=1.0
            )
            if self.warps:
                images = self._warp(images, draws)
            elif self.config.flip:
                mirrored = draws[:, _FLIP] < 0.0
                images = tf.where(mirrored[:, None, None, None], tf.reverse(images, [2]), images)
            if self.recolours:
                images = self._recolour(images, draws)
            if self.config.erase:
                images = self._erase(images, tf.random.experimental.stateless_fold_in(seed, 2))
            if self.config.blur or self.config.downscale or self.config.jpeg:
                images = self._degrade(images, tf.random.experimental.stateless_fold_in(seed, 3))
            return images

    def _warp(self, images: tf.Tensor, draws: tf.Tensor) -> tf.Tensor:
        """One bilinear resampling with mirrored borders for flip, rotation, zoom and shift."""
        cfg = self.config
        height, width = int(images.shape[1]), int(images.shape[2])
        angle = draws[:, _ANGLE] * (cfg.rotation * 2.0 * math.pi)
        zoom = 1.0 + draws[:, _ZOOM] * cfg.zoom
        shift_x = draws[:, _SHIFT_X] * (cfg.translation * width)
        shift_y = draws[:, _SHIFT_Y] * (cfg.translation * height)
        flip = tf.where(draws[:, _FLIP] < 0.0, -1.0, 1.0) if cfg.flip else tf.ones_like(angle)
        cos, sin = tf.cos(angle), tf.sin(angle)
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        # Output pixel p reads input pixel centre + zoom * rotation * flip * (p - centre) - shift.
        a0, a1 = zoom * cos * flip, -zoom * sin
        b0, b1 = zoom * sin * flip, zoom * cos
        a2 = cx - a0 * cx - a1 * cy - shift_x
        b2 = cy - b0 * cx - b1 * cy - shift_y
        zeros = tf.zeros_like(angle)
        transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=images,
            transforms=transforms,
            output_shape=tf.constant([height, width], tf.int32),
            fill_value=tf.constant(0.0),
            interpolation="BILINEAR",
            fill_mode="REFLECT",
        )

    def _recolour(self, images: tf.Tensor, draws: tf.Tensor) -> tf.Tensor:
        """Brightness shift then contrast about the image mean, as one multiply-add, clipped."""
        cfg = self.config
        delta = draws[:, _BRIGHTNESS, None, None, None] * (cfg.brightness * 255.0)
        factor = 1.0 + draws[:, _CONTRAST, None, None, None] * cfg.contrast
        mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
        # ((x + delta) - (mean + delta)) * factor + (mean + delta)
        return tf.clip_by_value(images * factor + (mean * (1.0 - factor) + delta), 0.0, 255.0)

    def _erase(self, images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Random erasing: with probability `erase`, one rectangle (10-40% of each side) is
        filled with the image's mean, so the model cannot lean on any one face region."""
        height, width = int(images.shape[1]), int(images.shape[2])
        draws = tf.random.stateless_uniform([tf.shape(images)[0], 5], seed=seed)
        erased = draws[:, 0] < self.config.erase
        half_h = (0.1 + 0.3 * draws[:, 1]) * height / 2.0
        half_w = (0.1 + 0.3 * draws[:, 2]) * width / 2.0
        centre_y, centre_x = draws[:, 3] * height, draws[:, 4] * width
        rows = tf.range(height, dtype=tf.float32)[None, :, None] + 0.5
        cols = tf.range(width, dtype=tf.float32)[None, None, :] + 0.5
        inside = (
            (tf.abs(rows - centre_y[:, None, None]) < half_h[:, None, None])
            & (tf.abs(cols - centre_x[:, None, None]) < half_w[:, None, None])
            & erased[:, None, None]
        )
        mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
        return tf.where(inside[..., None], mean, images)

    def _degrade(self, images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Web-photo degradations, each applied to a random share of the images: blur, down-
        scaling and JPEG compression. The blur width and the scale are drawn once per batch."""
        cfg = self.config
        count = tf.shape(images)[0]
        picks = tf.random.stateless_uniform([count, 3], seed=seed)
        strength = tf.random.stateless_uniform(
            [2], seed=tf.random.experimental.stateless_fold_in(seed, 1)
        )

        def chosen(column: int, probability: float, changed: tf.Tensor) -> tf.Tensor:
            mask = picks[:, column] < probability
            return tf.where(mask[:, None, None, None], changed, images)

        if cfg.blur:
            images = chosen(0, cfg.blur, _gaussian_blur(images, 0.5 + 1.5 * strength[0]))
        if cfg.downscale:
            images = chosen(1, cfg.downscale, _down_and_up(images, 0.25 + 0.5 * strength[1]))
        if cfg.jpeg:
            qualities = tf.random.experimental.stateless_fold_in(seed, 2)
            images = chosen(2, cfg.jpeg, _jpeg_round_trip(images, qualities))
        return images


def _gaussian_blur(images: tf.Tensor, sigma: tf.Tensor, radius: int = 4) -> tf.Tensor:
    """A separable Gaussian blur with mirrored borders."""
    taps = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(taps / sigma))
    kernel /= tf.reduce_sum(kernel)
    channels = int(images.shape[-1])
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], "REFLECT")
    across = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, channels, 1])
    down = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, channels, 1])
    out = tf.nn.depthwise_conv2d(padded, across, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(out, down, [1, 1, 1, 1], "VALID")


def _down_and_up(images: tf.Tensor, scale: tf.Tensor) -> tf.Tensor:
    """The images resized to `scale` of their size (antialiased) and back (bilinear)."""
    height, width = int(images.shape[1]), int(images.shape[2])
    small = tf.maximum(tf.cast(tf.round(scale * [height, width]), tf.int32), 1)
    shrunk = tf.image.resize(images, small, antialias=True)
    return tf.clip_by_value(tf.image.resize(shrunk, [height, width]), 0.0, 255.0)


def _jpeg_round_trip(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Each image JPEG-encoded at a random quality of 20-90 and decoded again."""
    count = tf.shape(images)[0]
    seeds = tf.random.stateless_uniform([count, 2], seed=seed, maxval=2**31 - 1, dtype=tf.int64)

    def one(args: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
        image, image_seed = args
        compressed = tf.image.stateless_random_jpeg_quality(image / 255.0, 20, 90, image_seed)
        return compressed * 255.0

    shape = images.shape
    out = tf.map_fn(one, (images, seeds), fn_output_signature=tf.float32)
    return tf.ensure_shape(out, shape)


def build_augmenter(config: AugmentConfig) -> Augmenter | None:
    """The configured augmenter, or None when every transform is switched off."""
    if not (
        config.flip
        or config.rotation
        or config.zoom
        or config.translation
        or config.brightness
        or config.contrast
        or config.erase
        or config.blur
        or config.downscale
        or config.jpeg
    ):
        return None
    return Augmenter(config)
