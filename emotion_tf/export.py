"""Export a trained model as a versioned SavedModel that TensorFlow Serving loads unchanged.

Layout: `<export_dir>/<version>/saved_model.pb`, `variables/`, `assets/emotion_tf.json` (class
names, input size, training metrics, config hash, versions) and
`assets.extra/tf_serving_warmup_requests` (PredictionLog records TF Serving replays at load).
Signatures:
- `serving_default`: `image_bytes` (tf.string [N], encoded jpg/png/bmp/gif) -> outputs below.
- `serving_images`: `images` (uint8 [N, H, W, C], any H and W) -> outputs below.
- `serving_images_one_view` (only in exports made with test-time flip): like `serving_images`
  but one forward pass, without the mirror-image average; the video path mirrors alternate
  frames itself, so smoothing over time averages the two views at half the cost.
Outputs: `probabilities` [N, classes], `label` [N] (class name), `confidence` [N],
`class_index` [N].
"""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from emotion_tf import __version__
from emotion_tf.errors import ModelDirError
from emotion_tf.io_utils import atomic_write_text, fsync_tree, temp_dir_beside
from emotion_tf.preprocess import bytes_to_model_input, resize_uint8
from emotion_tf.run_dir import RunDir

log = logging.getLogger(__name__)

METADATA_FILE = "emotion_tf.json"
BYTES_SIGNATURE = "serving_default"
IMAGES_SIGNATURE = "serving_images"
ONE_VIEW_SIGNATURE = "serving_images_one_view"
BYTES_INPUT = "image_bytes"
IMAGES_INPUT = "images"
OUTPUT_NAMES = ("probabilities", "label", "confidence", "class_index")
WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
DEFAULT_MODEL_NAME = "emotion"
_AUTO_VERSION_TRIES = 5


def _serving_module(
    model: keras.Model,
    class_names: list[str],
    size: int,
    channels: int,
    test_time_flip: bool = False,
    temperature: float = 1.0,
) -> tf.Module:
    """A tf.Module that tracks only the raw variables; the Keras model stays in the closure.

    Tracking the Keras model itself makes Keras 3 store every variable twice
    (keras-team/keras#23553) and breaks `saved_model_cli run`.
    """
    module = tf.Module()
    module.weights = [w.value for w in model.weights]
    names = tf.constant(class_names)

    def outputs(images: tf.Tensor, flip: bool = test_time_flip) -> dict[str, tf.Tensor]:
        images = tf.cast(images, tf.float32)
        probabilities = tf.cast(model(images, training=False), tf.float32)
        if flip:  # average with the mirror image, as the run's evaluation did
            mirrored = tf.cast(model(tf.reverse(images, axis=[2]), training=False), tf.float32)
            probabilities = (probabilities + mirrored) / 2.0
        if temperature != 1.0:  # calibrated confidences (the packaged model's temperature)
            logits = tf.math.log(tf.maximum(probabilities, 1e-12)) / temperature
            probabilities = tf.nn.softmax(logits, axis=1)
        index = tf.argmax(probabilities, axis=1)
        return {
            "probabilities": probabilities,
            "label": tf.gather(names, index),
            "confidence": tf.reduce_max(probabilities, axis=1),
            "class_index": index,
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        images = tf.map_fn(
            lambda data: bytes_to_model_input(data, size, channels),
            image_bytes,
            fn_output_signature=tf.TensorSpec([size, size, channels], tf.uint8),
        )
        return outputs(images)

    @tf.function(
        input_signature=[tf.TensorSpec([None, None, None, channels], tf.uint8, name="images")]
    )
    def serve_images(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return outputs(resize_uint8(images, size))

    @tf.function(
        input_signature=[tf.TensorSpec([None, None, None, channels], tf.uint8, name="images")]
    )
    def serve_one_view(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return outputs(resize_uint8(images, size), flip=False)

    module.serve_bytes = serve_bytes
    module.serve_images = serve_images
    if test_time_flip:
        module.serve_one_view = serve_one_view
    return module


def module_signatures(module: tf.Module) -> dict[str, Any]:
    """The serving signatures of a module made by `_serving_module`, by name."""
    signatures = {BYTES_SIGNATURE: module.serve_bytes, IMAGES_SIGNATURE: module.serve_images}
    if hasattr(module, "serve_one_view"):
        signatures[ONE_VIEW_SIGNATURE] = module.serve_one_view
    return signatures


def next_version(export_dir: Path) -> int:
    """One more than the largest integer version folder under `export_dir` (1 if none)."""
    versions = list_versions(export_dir)
    return (max(versions) + 1) if versions else 1


def list_versions(export_dir: Path) -> list[int]:
    if not Path(export_dir).is_dir():
        return []
    return sorted(
        int(p.name) for p in Path(export_dir).iterdir() if p.is_dir() and p.name.isdigit()
    )


def export_model(
    model: keras.Model,
    export_dir: Path,
    class_names: list[str],
    version: int | None = None,
    metadata: dict[str, Any] | None = None,
    warmup: bool = True,
    test_time_flip: bool = False,
    temperature: float = 1.0,
) -> Path:
    """Write `model` to `<export_dir>/<version>/` atomically and return that path.

    `version=None` takes the next free integer; an existing version is never overwritten
    (`ModelDirError`). `warmup` writes TF Serving warm-up requests when `tensorflow-serving-api`
    is importable, and logs a warning otherwise. `test_time_flip` makes every signature average
    the probabilities of each image and its mirror image; `temperature` scales them as
    softmax(log(p) / temperature).
    """
    export_dir = Path(export_dir)
    export_dir.mkdir(parents=True, exist_ok=True)
    auto_version = version is None
    version = next_version(export_dir) if version is None else int(version)
    if version < 1:
        raise ModelDirError(f"export version must be a positive integer. Received: {version}")
    target = export_dir / str(version)
    if target.exists():
        raise ModelDirError(
            f"export version {version} already exists, not overwriting: {target} "
            f"(omit --version to use the next free one, {next_version(export_dir)})"
        )
    _, height, width, channels = model.input_shape
    if height != width:
        raise ModelDirError(f"model input must be square. Received: {model.input_shape}")
    module = _serving_module(
        model, class_names, int(height), int(channels), test_time_flip, temperature
    )
    # TF Serving only loads folders named by integers, so the temp folder is never served.
    with temp_dir_beside(export_dir / str(version)) as tmp:
        signatures = module_signatures(module)
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        warmup_count = (
            write_warmup_requests(tmp, int(height), int(channels), list(signatures))
            if warmup
            else 0
        )
        info = {
            "class_names": list(class_names),
            "input_size": int(height),
            "channels": int(channels),
            "package_version": __version__,
            "tensorflow_version": tf.__version__,
            "keras_version": keras.__version__,
            "signatures": {
                name: BYTES_INPUT if name == BYTES_SIGNATURE else IMAGES_INPUT
                for name in signatures
            },
            "outputs": list(OUTPUT_NAMES),
            "weights_bytes": weights_nbytes(model),
            "warmup_requests": warmup_count,
            "test_time_flip": bool(test_time_flip),
            "temperature": float(temperature),
        }
        info.update(metadata or {})
        (tmp / "assets").mkdir(exist_ok=True)
        atomic_write_text(tmp / "assets" / METADATA_FILE, json.dumps(info, indent=2) + "\n")
        fsync_tree(tmp)
        target = _claim_version(tmp, export_dir, version, auto_version)
    return target


def weights_nbytes(model: keras.Model) -> int:
    """Bytes of all the model's weights in memory: what a lean export should take on disk."""
    return int(sum(np.dtype(w.dtype).itemsize * int(np.prod(w.shape)) for w in model.weights))


def _claim_version(tmp: Path, export_dir: Path, version: int, auto_version: bool) -> Path:
    """Rename `tmp` to its version folder; never replace one that appeared meanwhile.

    A concurrent export can take the version between the check and the rename; an
    automatically chosen version then moves on to the next free one.
    """
    for _ in range(_AUTO_VERSION_TRIES):
        target = export_dir / str(version)
        # os.rename silently replaces an *empty* directory, so check first as well.
        if not target.exists():
            try:
                os.rename(tmp, target)
                return target
            except OSError as err:
                if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
        if not auto_version:
            raise ModelDirError(
                f"export version {version} appeared while exporting, not overwriting: {target}"
            )
        version = next_version(export_dir)
    raise ModelDirError(f"could not claim a free export version under {export_dir}")


def warmup_image(size: int, channels: int) -> np.ndarray:
    """A deterministic uint8 [size, size, channels] test card used for warm-up requests."""
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    image = (ramp[None, :] + ramp[:, None]) / 2.0
    return np.repeat(image[..., None], channels, axis=2).round().astype(np.uint8)


def write_warmup_requests(
    version_dir: Path,
    size: int,
    channels: int,
    signatures: list[str] | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
) -> int:
    """Write `assets.extra/tf_serving_warmup_requests`: one PredictionLog per signature
    (`signatures`: their names; default the two every export has).

    Returns the number of records, or 0 (with a warning) if `tensorflow-serving-api` is not
    installed: the export still works, TF Serving then just answers its first request slower.
    """
    try:
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    except ImportError:
        log.warning(
            "tensorflow-serving-api is not installed: export has no TF Serving warm-up requests "
            "(pip install --no-deps tensorflow-serving-api)"
        )
        return 0
    image = warmup_image(size, channels)
    png = tf.io.encode_png(image).numpy()
    pixels = (IMAGES_INPUT, tf.make_tensor_proto(image[None], dtype=tf.uint8))
    requests = {
        name: (BYTES_INPUT, tf.make_tensor_proto([png], dtype=tf.string))
        if name == BYTES_SIGNATURE
        else pixels
        for name in signatures or [BYTES_SIGNATURE, IMAGES_SIGNATURE]
    }
    folder = Path(version_dir) / WARMUP_DIR
    folder.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(folder / WARMUP_FILE)) as writer:
        for signature, (input_name, tensor) in requests.items():
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
            )
            request.inputs[input_name].CopyFrom(tensor)
            record = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(record.SerializeToString())
    return len(requests)


def read_warmup_requests(version_dir: Path) -> list[Any]:
    """The PredictionLog records of an export's warm-up file (needs tensorflow-serving-api)."""
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(version_dir) / WARMUP_DIR / WARMUP_FILE
    if not path.is_file():
        raise ModelDirError(f"export has no warm-up requests: {path}")
    records = []
    for raw in tf.data.TFRecordDataset(str(path)):
        record = prediction_log_pb2.PredictionLog()
        record.ParseFromString(raw.numpy())
        records.append(record)
    return records


def resolve_export(path: str | Path) -> Path:
    """A version folder from a version folder, an export base (newest version) or a run dir."""
    path = Path(path)
    if not path.exists():
        raise ModelDirError(f"model path not found: {path}")
    if (path / "saved_model.pb").is_file():
        return path
    for base in (path, RunDir(path).export_dir()):
        versions = list_versions(base)
        if versions:
            candidate = base / str(versions[-1])
            if (candidate / "saved_model.pb").is_file():
                return candidate
    raise ModelDirError(
        f"not an emotion-tf export: {path} (expected a SavedModel version folder, an export base "
        "with integer version folders, or a run directory with export/)"
    )


def read_metadata(version_dir: Path) -> dict[str, Any]:
    meta_path = Path(version_dir) / "assets" / METADATA_FILE
    if not meta_path.is_file():
        raise ModelDirError(f"export has no {METADATA_FILE} (not made by emotion-tf?): {meta_path}")
    try:
        return json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise ModelDirError(f"export metadata is not valid JSON: {meta_path} ({err})") from err


class LoadedExport:
    """A loaded export: call `predict_bytes` or `predict_images` on batches.

    The export is checked first (`emotion_tf.export_checks`): its ops against the allow-list,
    unless `trust`, and its contract (signatures, outputs, metadata), each refused in one line.
    """

    def __init__(self, path: str | Path, trust: bool = False):
        from emotion_tf.export_checks import check_export

        self.path = resolve_export(path)
        self.metadata = read_metadata(self.path)
        self.meta_graph = check_export(self.path, self.metadata, trust)
        self.class_names: list[str] = list(self.metadata["class_names"])
        self.input_size: int = int(self.metadata["input_size"])
        self.channels: int = int(self.metadata["channels"])
        try:
            self._loaded = tf.saved_model.load(str(self.path))
        except (OSError, ValueError, tf.errors.OpError) as err:
            raise ModelDirError(f"cannot load SavedModel {self.path}: {_first_line(err)}") from err
        signatures = self._loaded.signatures
        if BYTES_SIGNATURE not in signatures or IMAGES_SIGNATURE not in signatures:
            raise ModelDirError(f"export lacks {BYTES_SIGNATURE}/{IMAGES_SIGNATURE}: {self.path}")
        self._bytes_fn = signatures[BYTES_SIGNATURE]
        self._images_fn = signatures[IMAGES_SIGNATURE]
        self._one_view_fn = signatures.get(ONE_VIEW_SIGNATURE)
        self.test_time_flip = bool(self.metadata.get("test_time_flip", False))

    def _checked(self, result: dict[str, Any], count: int) -> dict[str, Any]:
        """numpy outputs, refused if they break the contract (rows, classes, outputs)."""
        outputs = {k: v.numpy() for k, v in result.items()}
        probabilities = outputs.get("probabilities")
        if probabilities is None or any(name not in outputs for name in OUTPUT_NAMES):
            raise ModelDirError(f"export {self.path} returned outputs {sorted(outputs)}")
        if probabilities.shape != (count, len(self.class_names)):
            raise ModelDirError(
                f"export {self.path} returned probabilities of shape {list(probabilities.shape)} "
                f"for {count} image(s) and {len(self.class_names)} classes"
            )
        return outputs

    @property
    def version(self) -> int | None:
        return int(self.path.name) if self.path.name.isdigit() else None

    def predict_bytes(self, blobs: list[bytes]) -> dict[str, Any]:
        result = self._bytes_fn(image_bytes=tf.constant(blobs, tf.string))
        return self._checked(result, len(blobs))

    def predict_images(self, images: Any) -> dict[str, Any]:
        tensor = tf.convert_to_tensor(images, tf.uint8)
        return self._checked(self._images_fn(images=tensor), int(tensor.shape[0]))

    @property
    def has_one_view(self) -> bool:
        """Whether `predict_one_view` skips a mirror pass (an export with test-time flip
        made by a version that writes `serving_images_one_view`)."""
        return self._one_view_fn is not None

    def predict_one_view(self, images: Any) -> dict[str, Any]:
        """Like `predict_images` with one forward pass: no mirror-image average."""
        if self._one_view_fn is None:
            return self.predict_images(images)
        tensor = tf.convert_to_tensor(images, tf.uint8)
        return self._checked(self._one_view_fn(images=tensor), int(tensor.shape[0]))


def _first_line(err: Exception) -> str:
    text = getattr(err, "message", None) or str(err)
    return (text.strip().splitlines() or [type(err).__name__])[0][:200]
