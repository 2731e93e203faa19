"""Convert a Keras AlexNet to a .tflite file: uint8 [N, size, size, C] in, probabilities out.

Mirror-image averaging and the temperature are inside the graph, so every TFLite runtime
gives the numbers `predict` gives. Resizing and decoding stay outside: TFLite has neither
antialiased resize (ScaleAndTranslate) nor DecodeImage, and a fixed input is what mobile
runtimes want. Quantization: "none" (float32), "float16" (float16 weights) or "int8"
(dynamic range: int8 weights, float activations; no representative data needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tensorflow as tf

from emotion_tf.errors import ConfigError
from emotion_tf.tflite.metadata import embed_metadata

QUANTIZE_MODES = ("none", "float16", "int8")
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
FIXED_METADATA_FILE = "emotion_tf.json"  # beside a fixed-size SavedModel's saved_model.pb


def fixed_size_graph(
    model: Any, test_time_flip: bool = False, temperature: float = 1.0
) -> tuple[tf.Module, Any]:
    """A module holding `model`'s weights and its `serve` function: uint8 images of the input
    size in, probabilities out, with the export's flip averaging and temperature inside."""
    _, size, _, channels = model.input_shape
    module = tf.Module()
    module.weights = [w.value for w in model.weights]

    @tf.function(
        input_signature=[tf.TensorSpec([None, size, size, channels], tf.uint8, INPUT_NAME)]
    )
    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        pixels = tf.cast(images, tf.float32)
        probabilities = tf.cast(model(pixels, training=False), tf.float32)
        if test_time_flip:
            mirrored = tf.cast(model(tf.reverse(pixels, axis=[2]), training=False), tf.float32)
            probabilities = (probabilities + mirrored) / 2.0
        if temperature != 1.0:
            logits = tf.math.log(tf.maximum(probabilities, 1e-12)) / temperature
            probabilities = tf.nn.softmax(logits, axis=1)
        return {OUTPUT_NAME: probabilities}

    module.serve = serve
    return module, serve.get_concrete_function()


def convert_to_tflite(
    model: Any,
    quantize: str = "none",
    test_time_flip: bool = False,
    temperature: float = 1.0,
) -> bytes:
    """The flatbuffer bytes of `model` with the export's post-processing (no metadata)."""
    if quantize not in QUANTIZE_MODES:
        raise ConfigError(
            f"quantize must be one of {list(QUANTIZE_MODES)}. Received: quantize={quantize!r}"
        )
    module, serve = fixed_size_graph(model, test_time_flip, temperature)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve], module)
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def write_tflite(
    path: Path,
    model: Any,
    class_names: list[str],
    quantize: str = "none",
    test_time_flip: bool = False,
    temperature: float = 1.0,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write `model` as a .tflite file with its class names and input size in the metadata."""
    from emotion_tf.io_utils import atomic_write_bytes

    flatbuffer = convert_to_tflite(model, quantize, test_time_flip, temperature)
    info = _graph_info(model, class_names, test_time_flip, temperature, metadata)
    path = Path(path)
    atomic_write_bytes(path, embed_metadata(flatbuffer, {**info, "quantize": quantize}))
    return path


def write_fixed_saved_model(
    path: Path,
    model: Any,
    class_names: list[str],
    test_time_flip: bool = False,
    temperature: float = 1.0,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write the .tflite's graph as a SavedModel folder (one `serving_default` signature), for
    converters that start from a SavedModel, such as `tensorflowjs_converter`; the class names
    and input size go beside it in `FIXED_METADATA_FILE`. An existing `path` is refused."""
    from emotion_tf.errors import DataError
    from emotion_tf.io_utils import atomic_write_json, staged_output

    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise DataError(f"output exists and is not an empty folder: {path}")
    info = _graph_info(model, class_names, test_time_flip, temperature, metadata)
    module, serve = fixed_size_graph(model, test_time_flip, temperature)
    with staged_output(path, overwrite=False) as staging:
        tf.saved_model.save(module, str(staging), signatures={"serving_default": serve})
        atomic_write_json(staging / FIXED_METADATA_FILE, info)
    return path


def _graph_info(
    model: Any,
    class_names: list[str],
    test_time_flip: bool,
    temperature: float,
    metadata: dict[str, Any] | None,
) -> dict[str, Any]:
    """What a reader of the fixed-size graph needs: class names, input, post-processing."""
    from emotion_tf import __version__

    _, size, _, channels = model.input_shape
    return {
        "class_names": list(class_names),
        "input_size": int(size),
        "channels": int(channels),
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "input_format": "uint8 [N, size, size, channels], already resized (antialiased)",
        "test_time_flip": bool(test_time_flip),
        "temperature": float(temperature),
        "package_version": __version__,
        "tensorflow_version": tf.__version__,
        **(metadata or {}),
    }
