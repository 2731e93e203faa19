"""Grad-CAM heat maps (Selvaraju et al., 2017) from AlexNet's last convolution, conv5.

The heat map for class c weights each conv5 channel by the spatial mean of d(logit_c)/d(channel)
and keeps the positive part of the weighted sum, scaled to [0, 1] per image.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FEATURE_LAYER = "pool5"  # Grad-CAM uses the input of pool5: conv5 after its activation
LOGITS_LAYER = "fc8"


class GradCam:
    """Grad-CAM heat maps for a Keras AlexNet."""

    def __init__(self, model: Any):
        import keras

        self.model = model
        features = model.get_layer(FEATURE_LAYER).input
        logits = model.get_layer(LOGITS_LAYER).output
        self._inner = keras.Model(model.inputs, [features, logits, model.output])
        _, self.size, _, self.channels = model.input_shape

    def __call__(
        self, images: np.ndarray, class_index: int | list[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Heat maps [N, size, size] in [0, 1], probabilities [N, classes], explained classes [N].

        `images` are uint8 or float 0-255 [N, size, size, channels]; `class_index` None explains
        each image's predicted class.
        """
        import tensorflow as tf

        x = tf.convert_to_tensor(np.asarray(images), tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(x)  # records every op after the input, so d(logit)/d(features) exists
            features, logits, probabilities = self._inner(x, training=False)
            if class_index is None:
                targets = tf.argmax(probabilities, axis=1, output_type=tf.int32)
            else:
                indices = np.broadcast_to(np.asarray(class_index, np.int32), (x.shape[0],))
                targets = tf.constant(indices, tf.int32)
            chosen = tf.gather(tf.cast(logits, tf.float32), targets, axis=1, batch_dims=1)
            score = tf.reduce_sum(chosen)
        grads = tf.cast(tape.gradient(score, features), tf.float32)
        features = tf.cast(features, tf.float32)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))
        cam = tf.image.resize(cam[..., None], [self.size, self.size], method="bilinear")[..., 0]
        peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)  # after resizing: peak is 1
        cam = tf.clip_by_value(tf.math.divide_no_nan(cam, peak), 0.0, 1.0)
        return cam.numpy(), np.asarray(probabilities, np.float64), targets.numpy()


def heat_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """uint8 RGB: `image` (gray or RGB) blended with the 'jet' colouring of `heat` (0-1)."""
    from matplotlib import colormaps

    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    rgb = np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]
    if heat.shape != rgb.shape[:2]:
        import tensorflow as tf

        heat = tf.image.resize(heat[..., None], rgb.shape[:2], method="bilinear")[..., 0].numpy()
    colours = colormaps["jet"](np.clip(heat, 0.0, 1.0))[..., :3] * 255.0
    blended = (1.0 - alpha) * rgb.astype(np.float64) + alpha * colours
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def explanation_panel(crop: np.ndarray, heat: np.ndarray, caption: str, side: int = 256) -> Any:
    """A PIL image: the face crop and its Grad-CAM overlay side by side, captioned."""
    from PIL import Image, ImageDraw

    from emotion_tf.faces.annotate import _font

    overlay = Image.fromarray(heat_overlay(crop, heat)).resize((side, side), Image.BILINEAR)
    plain = crop[..., 0] if crop.ndim == 3 and crop.shape[-1] == 1 else crop
    face = Image.fromarray(plain).convert("RGB").resize((side, side), Image.BILINEAR)
    font = _font(max(11, side // 18))
    bar = side // 7
    panel = Image.new("RGB", (2 * side, side + bar), (255, 255, 255))
    panel.paste(face, (0, bar))
    panel.paste(overlay, (side, bar))
    ImageDraw.Draw(panel).text((6, bar // 5), caption, fill=(0, 0, 0), font=font)
    return panel


def paste_heat(photo: np.ndarray, region: Any, heat: np.ndarray) -> np.ndarray:
    """`photo` (RGB) with `heat` blended into the square crop `region` (clipped to the photo)."""
    import tensorflow as tf

    out = photo.copy()
    heat_full = tf.image.resize(heat[..., None], [region.h, region.w])[..., 0].numpy()
    height, width = photo.shape[:2]
    x0, y0 = max(0, region.x), max(0, region.y)
    x1, y1 = min(width, region.x + region.w), min(height, region.y + region.h)
    if x1 <= x0 or y1 <= y0:
        return out
    part = heat_full[y0 - region.y : y1 - region.y, x0 - region.x : x1 - region.x]
    out[y0:y1, x0:x1] = heat_overlay(photo[y0:y1, x0:x1], part)
    return out
