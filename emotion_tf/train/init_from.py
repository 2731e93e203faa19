"""`train.init_from`: start training from a trained model (fine-tuning), and
`train.freeze_conv_epochs`: keep its convolutional layers fixed for the first epochs."""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

import keras
import numpy as np

from emotion_tf.errors import ConfigError, ModelDirError
from emotion_tf.predictors.resolve import PACKAGED_SUFFIX

log = logging.getLogger(__name__)

CHECKPOINTS = ("best.keras", "last.keras")
# `train.init_from: packaged` starts from the model inside the package (emotion_tf/packaged);
# any other packaged .npz file is named by its path.
PACKAGED = "packaged"
CONV_PREFIXES = ("conv1", "conv2", "conv3", "conv4", "conv5")
# tf.image.rgb_to_grayscale's weights: a gray model's first filters, spread over R, G and B by
# these, see a colour image exactly as the gray model sees its gray conversion.
LUMA = (0.2989, 0.5870, 0.1140)


def resolve_init_file(source: str | Path) -> Path:
    """The model file behind `source`: a .keras or packaged .npz file itself, the packaged
    model (`packaged`), or the checkpoint a run directory kept (`train.keep`: best.keras or
    last.keras; either one without a config)."""
    from emotion_tf.packaged import PACKAGED_MODEL_FILE
    from emotion_tf.run_dir import RunDir

    if str(source) == PACKAGED:
        return PACKAGED_MODEL_FILE
    path = Path(source)
    if path.is_dir():
        run = RunDir(path)
        candidates = [run.best_checkpoint, run.last_checkpoint]
        if run.config_file.is_file():
            candidates.insert(0, run.kept_checkpoint(run.load_config()))
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise ConfigError(
            f"train.init_from: no {' or '.join(CHECKPOINTS)} in the run directory {path}"
        )
    if not path.is_file():
        raise ConfigError(f"train.init_from: no such file or run directory: {path}")
    if path.suffix not in (".keras", PACKAGED_SUFFIX):
        raise ConfigError(
            f"train.init_from: expected a run directory, a .keras file, a packaged "
            f"{PACKAGED_SUFFIX} file or '{PACKAGED}': {path}"
        )
    return path


def load_init_model(source: str | Path) -> keras.Model:
    """The trained model at `source`, or a one-line ConfigError naming the file."""
    path = resolve_init_file(source)
    if path.suffix == PACKAGED_SUFFIX:
        from emotion_tf.packaged.archive import read_packaged

        try:
            return read_packaged(path).model
        except ModelDirError as err:
            raise ConfigError(f"train.init_from: {err}") from err
    if not zipfile.is_zipfile(path):
        raise ConfigError(f"train.init_from: {path} is not a Keras model file (not a .keras zip)")
    try:
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as err:  # Keras raises many types for foreign or broken files
        message = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
        raise ConfigError(
            f"train.init_from: {path} could not be loaded as a Keras model "
            f"({type(err).__name__}: {message})"
        ) from err


def class_names_of(source: str | Path) -> list[str] | None:
    """The class names recorded beside the model (its run's metrics.json), if any."""
    from emotion_tf.run_dir import RunDir

    path = resolve_init_file(source)
    if path.suffix == PACKAGED_SUFFIX:
        from emotion_tf.packaged.archive import read_metadata

        return list(read_metadata(path)["class_names"])
    metrics = RunDir(path.parent).metrics_file
    if metrics.is_file():
        try:
            names = json.loads(metrics.read_text()).get("class_names")
        except (OSError, ValueError):
            return None
        return list(names) if names else None
    return None


def copy_weights(source: keras.Model, target: keras.Model, origin: str) -> int:
    """Copy every weight of `source` into the layer of the same name in `target`; the two
    must have the same layers and shapes (the same `model` config). Returns the layer count."""
    theirs = {layer.name: layer for layer in source.layers if layer.weights}
    ours = [layer for layer in target.layers if layer.weights]
    missing = sorted({layer.name for layer in ours} ^ set(theirs))
    if missing:
        raise ConfigError(
            f"train.init_from: {origin} has other layers than this config's model "
            f"(differ: {', '.join(missing[:6])}); use the model settings it was trained with"
        )
    for layer in ours:
        values = theirs[layer.name].get_weights()
        shapes = [tuple(w.shape) for w in layer.weights]
        values = [
            gray_to_colour(v, s) if layer.name == "conv1" else v for v, s in zip(values, shapes)
        ]
        if [tuple(v.shape) for v in values] != shapes:
            raise ConfigError(
                f"train.init_from: layer {layer.name} of {origin} has weights of shapes "
                f"{[tuple(v.shape) for v in values]}, this config's model {shapes}; use the "
                "model settings it was trained with (model.input_size, channels, width, ...)"
            )
        layer.set_weights(values)
    return len(ours)


def gray_to_colour(kernel: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A gray model's first kernel [k, k, 1, n] spread over 3 input channels (LUMA) when
    `shape` asks for colour; any other kernel unchanged."""
    if (
        kernel.ndim == 4
        and kernel.shape[2] == 1
        and shape == (*kernel.shape[:2], 3, kernel.shape[3])
    ):
        return np.concatenate([kernel * weight for weight in LUMA], axis=2)
    return kernel


def initialise_from(model: keras.Model, source: str, class_names: list[str]) -> None:
    """Load `source` and copy its weights into `model` (built from this run's config). A gray
    model may start a colour one (model.channels: 3): it then reads colour photos as it read
    their gray conversions, and fine-tuning can learn from colour."""
    trained = load_init_model(source)
    origin = str(resolve_init_file(source))
    theirs, ours = tuple(trained.input_shape[1:]), tuple(model.input_shape[1:])
    gray_to_colour_ok = (theirs[2], ours[2]) == (1, 3)
    if theirs[:2] != ours[:2] or (theirs[2] != ours[2] and not gray_to_colour_ok):
        raise ConfigError(
            f"train.init_from: {origin} takes inputs of shape {tuple(trained.input_shape[1:])}, "
            f"this config's model {tuple(model.input_shape[1:])} (model.input_size, channels)"
        )
    known = class_names_of(source)
    if known is not None and known != list(class_names):
        raise ConfigError(
            f"train.init_from: {origin} was trained on classes {known}, this data has "
            f"{list(class_names)}"
        )
    count = copy_weights(trained, model, origin)
    log.info("initialised %d layers from %s", count, origin)


def conv_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The convolutional part: conv1-conv5 and their normalization layers."""
    return [
        layer
        for layer in model.layers
        if layer.name.split("_")[0] in CONV_PREFIXES and layer.weights
    ]


class FreezeConvLayers(keras.callbacks.Callback):
    """Keep the convolutional layers frozen (BatchNorm in inference mode) for the first
    `epochs` epochs, then train everything. The optimizer must have been built on all
    variables before (`prepare_freezing`), so it knows the conv variables it gets later."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs
        self._frozen: bool | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        frozen = epoch < self.epochs
        if frozen == self._frozen:
            return
        for layer in conv_layers(self.model):
            layer.trainable = not frozen
        self._frozen = frozen
        self.model.make_train_function(force=True)  # trace again with the new variable list
        log.info(
            "epoch %d: convolutional layers %s", epoch + 1, "frozen" if frozen else "trainable"
        )


def prepare_freezing(model: keras.Model) -> None:
    """Build the optimizer on every trainable variable while all of them are trainable."""
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
