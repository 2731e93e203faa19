"""Mixup (Zhang et al., 2018): train on blends of two images and of their labels.

Each example is blended with its mirror in the batch (example i with example n-1-i) by a
weight drawn from Beta(alpha, alpha). Soft targets make the network less sure of the noisy
labels it memorises otherwise. The draws are stateless, like the augmenter's.
"""

from __future__ import annotations

import tensorflow as tf


def mixup(
    images: tf.Tensor, labels: tf.Tensor, alpha: float, seed: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Blend a float32 [N, H, W, C] batch and its one-hot [N, K] labels; same seed, same blend."""
    with tf.name_scope("mixup"):
        count = tf.shape(images)[0]
        # Beta(a, a) as G1 / (G1 + G2) with G1, G2 ~ Gamma(a).
        gammas = tf.random.stateless_gamma([2, count], seed=seed, alpha=alpha)
        weight = gammas[0] / tf.maximum(gammas[0] + gammas[1], 1e-12)
        image_weight = weight[:, None, None, None]
        mixed_images = image_weight * images + (1.0 - image_weight) * tf.reverse(images, [0])
        label_weight = weight[:, None]
        mixed_labels = label_weight * labels + (1.0 - label_weight) * tf.reverse(labels, [0])
        return mixed_images, mixed_labels
