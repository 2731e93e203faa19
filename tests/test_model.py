"""AlexNet builder: canonical parameter count, shapes at small sizes, named layers."""

import numpy as np
import pytest

from emotion_tf.config import ModelConfig
from emotion_tf.errors import ConfigError
from emotion_tf.model.alexnet import build_alexnet, geometry


def test_canonical_parameter_count_and_shape():
    model = build_alexnet(ModelConfig(input_size=227), num_classes=2)
    assert model.count_params() == 58_289_538
    assert model.output_shape == (None, 2)
    names = {layer.name for layer in model.layers}
    assert {"conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"} <= names
    assert model.get_layer("pool5").output.shape[1:3] == (6, 6)


@pytest.mark.parametrize("size", [32, 48, 64, 96])
def test_small_inputs_work(size):
    config = ModelConfig(input_size=size, channels=1, width=0.0625)
    model = build_alexnet(config, num_classes=3)
    images = np.random.default_rng(0).uniform(0, 255, (2, size, size, 1)).astype("float32")
    probs = model(images, training=False).numpy()
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert geometry(config).feature_size >= 1


def test_pixels_are_rescaled_inside_the_model():
    """Raw 0-255 pixels go in; conv1 sees them scaled to [-1, 1], exactly as a caller scaling
    them by hand would feed the rest of the network."""
    import keras

    model = build_alexnet(ModelConfig(input_size=32, width=0.0625), num_classes=2)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (3, 32, 32, 3)).astype("float32")
    pixels[0] = 0.0
    pixels[1] = 255.0
    conv1 = model.get_layer("conv1")
    seen = keras.Model(model.inputs, conv1.input)(pixels).numpy()
    np.testing.assert_allclose(seen[0], -1.0)
    np.testing.assert_allclose(seen[1], 1.0)
    np.testing.assert_allclose(seen[2], pixels[2] / 127.5 - 1.0, atol=1e-6)
    # The same probabilities as the network after the scaling, fed hand-scaled pixels.
    rest = keras.Model(conv1.input, model.output)
    np.testing.assert_allclose(
        model(pixels, training=False).numpy(),
        rest(pixels / 127.5 - 1.0, training=False).numpy(),
        atol=1e-6,
    )


@pytest.mark.parametrize("normalization", ["batch_norm", "lrn"])
def test_normalization_switches(normalization):
    model = build_alexnet(ModelConfig(input_size=32, width=0.0625, normalization=normalization), 2)
    suffix = "_bn" if normalization == "batch_norm" else "_lrn"
    assert any(layer.name == f"conv1{suffix}" for layer in model.layers)


def test_collapsing_geometry_is_rejected():
    with pytest.raises(ConfigError, match="input_size"):
        geometry(ModelConfig(input_size=32, padding="valid", conv1_stride=4))


def test_one_class_is_rejected():
    with pytest.raises(ConfigError, match="num_classes"):
        build_alexnet(ModelConfig(input_size=32, width=0.0625), num_classes=1)
