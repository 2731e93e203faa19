"""Weight averaging at the end of training: the optimizer's EMA weights, with fresh BatchNorm.

The optimizer keeps an exponential moving average of the trainable weights (`use_ema`). The
average replaces the weights once training ends; BatchNorm's moving statistics belong to the
last weights, not to the average, so they are re-estimated with a pass over training images.
"""

from __future__ import annotations

import logging

import keras
import tensorflow as tf

log = logging.getLogger(__name__)


def batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def refresh_batchnorm_statistics(
    model: keras.Model, dataset: tf.data.Dataset, max_batches: int
) -> int:
    """Set every BatchNorm's moving mean and variance to their average over `dataset` batches.

    Batch k (from 0) enters with momentum k / (k + 1), which makes the moving statistics the
    plain mean over the batches seen. Returns the number of batches used.
    """
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    momentums = [layer.momentum for layer in layers]
    used = 0
    try:
        for images, _ in dataset.take(max_batches):
            for layer in layers:
                layer.momentum = used / (used + 1)
            model(images, training=True)
            used += 1
    finally:
        for layer, momentum in zip(layers, momentums):
            layer.momentum = momentum
    return used


def apply_weight_average(model: keras.Model, bn_data: tf.data.Dataset, max_batches: int) -> None:
    """Overwrite the model's weights with the optimizer's EMA and re-estimate BatchNorm."""
    model.optimizer.finalize_variable_values(model.trainable_variables)
    used = refresh_batchnorm_statistics(model, bn_data, max_batches)
    if used:
        log.info("weight average: BatchNorm statistics re-estimated on %d training batches", used)
