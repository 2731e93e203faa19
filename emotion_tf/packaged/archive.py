"""Write and read a packaged model: one compressed .npz of int8/float32 arrays plus JSON metadata.

Nothing in the file is executed at load: arrays are read with `allow_pickle=False`, and the
model is rebuilt by `build_alexnet` from the resolved config stored in the metadata.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from emotion_tf.errors import ModelDirError
from emotion_tf.packaged.weights import decode_weights, encode_weights

FORMAT_NAME = "emotion-tf-packaged"
FORMAT_VERSION = 1
METADATA_KEY = "metadata"


@dataclasses.dataclass
class PackagedModel:
    """A packaged model read back: the Keras model and what the file says about it."""

    path: Path
    model: Any  # keras.Model
    metadata: dict[str, Any]

    @property
    def class_names(self) -> list[str]:
        return list(self.metadata["class_names"])

    @property
    def temperature(self) -> float:
        return float(self.metadata.get("temperature", 1.0))

    @property
    def test_time_flip(self) -> bool:
        return bool(self.metadata["config"]["model"].get("test_time_flip", False))


def write_packaged(path: Path, model: Any, metadata: dict[str, Any]) -> int:
    """Write `model`'s weights (int8 kernels) and `metadata` to `path` atomically; return bytes.

    `metadata` must hold `config` (the resolved config as a dict) and `class_names`.
    """
    from emotion_tf.io_utils import atomic_write_bytes

    for key in ("config", "class_names"):
        if key not in metadata:
            raise ValueError(f"packaged metadata needs '{key}'. Received keys: {sorted(metadata)}")
    info = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        **metadata,
        "weights": [{"path": w.path, "shape": list(w.shape)} for w in model.weights],
    }
    arrays = encode_weights([np.asarray(w.numpy()) for w in model.weights])
    arrays[METADATA_KEY] = np.frombuffer(json.dumps(info).encode("utf-8"), np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    data = buffer.getvalue()
    atomic_write_bytes(Path(path), data)
    return len(data)


def read_metadata(path: Path) -> dict[str, Any]:
    """The JSON metadata of a packaged file, checked to be one (ModelDirError otherwise)."""
    with _open(path) as arrays:
        return _metadata(path, arrays)


def read_packaged(path: Path) -> PackagedModel:
    """Rebuild the Keras model stored in `path` with its float32 weights restored."""
    path = Path(path)
    with _open(path) as arrays:
        info = _metadata(path, arrays)  # a missing or foreign file fails before TensorFlow starts
        from emotion_tf.config import load_config
        from emotion_tf.model.alexnet import build_alexnet

        config = load_config(extra=info["config"])
        model = build_alexnet(config.model, len(info["class_names"]))
        expected = [list(w.shape) for w in model.weights]
        stored = [list(item["shape"]) for item in info["weights"]]
        if expected != stored:
            raise ModelDirError(
                f"packaged model {path} does not match the AlexNet its config builds "
                f"({len(stored)} stored weights, {len(expected)} expected)"
            )
        try:
            weights = decode_weights({k: arrays[k] for k in arrays.files}, len(expected))
        except KeyError as err:
            raise ModelDirError(f"packaged model {path} lacks weight array {err}") from err
    model.set_weights(weights)
    return PackagedModel(path, model, info)


def _open(path: Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ModelDirError(f"packaged model not found: {path}")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ModelDirError(f"not a packaged emotion-tf model (.npz): {path} ({err})") from err


def _metadata(path: Path, arrays: Any) -> dict[str, Any]:
    if METADATA_KEY not in arrays.files:
        raise ModelDirError(f"not a packaged emotion-tf model: {path} has no {METADATA_KEY}")
    try:
        info = json.loads(bytes(arrays[METADATA_KEY]).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ModelDirError(f"packaged model metadata is not valid JSON: {path}") from err
    if not isinstance(info, dict) or info.get("format") != FORMAT_NAME:
        raise ModelDirError(
            f"not a packaged emotion-tf model: {path} (format is not {FORMAT_NAME})"
        )
    if int(info.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelDirError(
            f"{path} has format version {info['format_version']}; this emotion-tf reads up to "
            f"{FORMAT_VERSION}: upgrade emotion-tf"
        )
    return info
