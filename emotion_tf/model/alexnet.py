"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012) as a Keras functional model.

Five convolutions and three fully connected layers with ReLU and dropout. At 227 px it is the
paper's single-tower network (58,289,538 parameters for 2 classes). Smaller inputs switch to
'same' padding and a smaller first stride so that no feature map collapses.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from emotion_tf.config import ModelConfig
from emotion_tf.errors import ConfigError

CANONICAL_SIZE = 227


@dataclasses.dataclass(frozen=True)
class Geometry:
    padding: str
    conv1_stride: int
    feature_size: int  # side of the last pooled feature map


def _out(size: int, kernel: int, stride: int, padding: str) -> int:
    if padding == "same":
        return -(-size // stride)
    return (size - kernel) // stride + 1


def geometry(config: ModelConfig) -> Geometry:
    """Padding, first stride and final feature-map size for `config.input_size`."""
    size = config.input_size
    padding = config.padding
    if padding == "auto":
        padding = "valid" if size >= 195 else "same"
    stride = config.conv1_stride or (4 if size >= 64 else 2 if size >= 32 else 1)
    side = _out(size, 11, stride, padding)  # conv1
    for _ in range(3):  # pool1, pool2, pool5; the convolutions in between keep the size
        side = _out(side, 3, 2, padding)
    if side < 1:
        raise ConfigError(
            f"model.input_size={size} collapses to nothing with padding={padding} and "
            f"conv1_stride={stride}; use a larger input or model.padding=same"
        )
    return Geometry(padding, stride, side)


@keras.saving.register_keras_serializable(package="emotion_tf")
class LocalResponseNorm(keras.layers.Layer):
    """Local response normalisation as in the paper (n=5, k=2, alpha=1e-4, beta=0.75)."""

    def call(self, inputs):
        return tf.nn.local_response_normalization(
            inputs, depth_radius=2, bias=2.0, alpha=1e-4 / 5, beta=0.75
        )


def _normalize(x, kind: str, name: str):
    if kind == "batch_norm":
        return keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    if kind == "lrn":
        return LocalResponseNorm(name=f"{name}_lrn")(x)
    return x


def build_alexnet(config: ModelConfig, num_classes: int) -> keras.Model:
    """Build AlexNet for `num_classes`; input is raw 0-255 pixels, output softmax probabilities."""
    if num_classes < 2:
        raise ConfigError(f"num_classes must be >= 2. Received: num_classes={num_classes}")
    geo = geometry(config)
    width = config.width

    def units(n: int) -> int:
        return max(4, round(n * width))

    def conv(x, filters: int, kernel: int, name: str, stride: int = 1, padding: str = "same"):
        x = keras.layers.Conv2D(
            units(filters),
            kernel,
            strides=stride,
            padding=padding,
            use_bias=config.normalization != "batch_norm",
            name=name,
            kernel_initializer="he_normal",
        )(x)
        x = _normalize(x, config.normalization, name)
        return keras.layers.ReLU(name=f"{name}_relu")(x)

    def pool(x, name: str):
        return keras.layers.MaxPooling2D(3, strides=2, padding=geo.padding, name=name)(x)

    # Centred inputs and He initialisation let the ReLU stack leave its initial plateau quickly
    # when trained from scratch on a few hundred images.
    inputs = keras.Input((config.input_size, config.input_size, config.channels), name="image")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)

    # Features: conv1-pool1, conv2-pool2, conv3, conv4, conv5-pool5.
    x = conv(x, 96, 11, "conv1", stride=geo.conv1_stride, padding=geo.padding)
    x = pool(x, "pool1")
    x = conv(x, 256, 5, "conv2")
    x = pool(x, "pool2")
    x = conv(x, 384, 3, "conv3")
    x = conv(x, 384, 3, "conv4")
    x = conv(x, 256, 3, "conv5")
    x = pool(x, "pool5")

    # Classifier: fc6, fc7 with dropout, fc8 softmax (kept in float32 under mixed precision).
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(
        units(4096), activation="relu", name="fc6", kernel_initializer="he_normal"
    )(x)
    x = keras.layers.Dropout(config.dropout, name="drop6")(x)
    x = keras.layers.Dense(
        units(4096), activation="relu", name="fc7", kernel_initializer="he_normal"
    )(x)
    x = keras.layers.Dropout(config.dropout, name="drop7")(x)
    x = keras.layers.Dense(num_classes, name="fc8")(x)
    outputs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="alexnet")
