"""Run an emotion-tf .tflite file like an export: resize outside, the interpreter inside."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from emotion_tf.errors import ModelDirError
from emotion_tf.predictors.outputs import outputs_from_probabilities
from emotion_tf.preprocess import bytes_to_model_input, resize_uint8
from emotion_tf.tflite.metadata import read_tflite_metadata


def make_interpreter(model_bytes: bytes) -> Any:
    """The LiteRT interpreter when `ai-edge-litert` is installed, else TensorFlow's own (whose
    deprecation warning is silenced: it is the one that ships with tensorflow-cpu)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = None  # noqa: N806
    if Interpreter is not None:
        return Interpreter(model_content=model_bytes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(model_content=model_bytes, num_threads=None)


class TFLitePredictor:
    """`predict_images` / `predict_bytes` over a .tflite file exported by emotion-tf."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelDirError(f"model path not found: {self.path}")
        data = self.path.read_bytes()
        self.metadata = read_tflite_metadata(data, str(self.path))
        self.class_names: list[str] = list(self.metadata["class_names"])
        self.input_size = int(self.metadata["input_size"])
        self.channels = int(self.metadata["channels"])
        try:
            self._interpreter = make_interpreter(data)
        except ValueError as err:
            raise ModelDirError(f"cannot load {self.path}: {err}") from err
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = 0
        self._lock = threading.Lock()  # one interpreter: calls from threads take turns

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for uint8 [N, size, size, C] images."""
        images = np.ascontiguousarray(images, np.uint8)
        with self._lock:
            if images.shape[0] != self._batch:
                self._interpreter.resize_tensor_input(self._input, list(images.shape))
                self._interpreter.allocate_tensors()
                self._batch = images.shape[0]
            self._interpreter.set_tensor(self._input, images)
            self._interpreter.invoke()
            return np.array(self._interpreter.get_tensor(self._output))

    def predict_images(self, images: Any) -> dict[str, Any]:
        images = resize_uint8(tf.convert_to_tensor(images, tf.uint8), self.input_size).numpy()
        if images.shape[0] == 0:
            return outputs_from_probabilities(
                np.zeros((0, len(self.class_names))), self.class_names
            )
        return outputs_from_probabilities(self.probabilities(images), self.class_names)

    def predict_bytes(self, blobs: list[bytes]) -> dict[str, Any]:
        """Raises tf.errors.InvalidArgumentError when a blob cannot be decoded (like the export)."""
        images = [
            bytes_to_model_input(tf.constant(b), self.input_size, self.channels).numpy()
            for b in blobs
        ]
        shape = (0, self.input_size, self.input_size, self.channels)
        return self.predict_images(np.stack(images) if images else np.zeros(shape, np.uint8))
