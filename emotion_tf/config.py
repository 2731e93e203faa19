"""Typed, validated run configuration loaded from YAML and `key=value` overrides."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from emotion_tf.errors import ConfigError

Strategy = Literal["auto", "default", "mirrored", "multi_worker"]
Precision = Literal["float32", "mixed_bfloat16", "mixed_float16"]
Optimizer = Literal["adam", "adamw", "sgd"]
Padding = Literal["auto", "valid", "same"]
Normalization = Literal["none", "batch_norm", "lrn"]


@dataclasses.dataclass
class AugmentConfig:
    """Training-only augmentation, applied in the tf.data pipeline on the CPU."""

    flip: bool = True
    rotation: float = 0.05  # fraction of a full turn
    zoom: float = 0.1
    translation: float = 0.1
    brightness: float = 0.1
    contrast: float = 0.1
    erase: float = 0.0  # probability of erasing one random rectangle (random erasing)
    # Degradations seen in web photos, each with its probability per image (0: off): a
    # Gaussian blur (sigma 0.5-2 px), a down-scaling to 25-75% and back up, a JPEG round trip
    # (quality 20-90).
    blur: float = 0.0
    downscale: float = 0.0
    jpeg: float = 0.0
    mixup: float = 0.0  # Beta(alpha, alpha) of image and label blends; 0 switches mixup off


@dataclasses.dataclass
class DataConfig:
    """Where the images are and how they are batched."""

    data_dir: str = "data"
    # More folders laid out like data_dir (train/ and validation/, the same class folders):
    # their splits are added to data_dir's (for example two collections of web photos).
    more_dirs: list[str] = dataclasses.field(default_factory=list)
    batch_size: int = 32  # global batch, split across replicas
    cache: bool = True
    shuffle_buffer: int = 2048
    max_pixels: int = 50_000_000  # larger images are rejected as decompression bombs
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    # Folders of whole photos: "detect" finds the faces when the data is scanned and trains on
    # the crops (cached in face_cache, default <run_dir>/face_crops); "none" uses images whole.
    faces: Literal["none", "detect"] = "none"
    detector: Literal["haar", "mtcnn", "blazeface", "haar+blazeface"] = "haar+blazeface"
    align: bool = False
    # A photo without a face: "whole" trains on the whole photo, "skip" leaves it out,
    # "second-look" trains on the fainter faces BlazeFace finds at a lower bar, else the whole
    # photo (as evaluate/predict --fallback second-look read such photos).
    no_face: Literal["whole", "skip", "second-look"] = "whole"
    # How many of a photo's faces (largest first) are trained on, each with the photo's label;
    # 0 trains on every face found.
    faces_per_photo: int = 1
    # Also train on every training photo with a face as a whole image, beside its faces, so the
    # model that reads photos without a face (classified whole) learns from all of them.
    whole_photos_too: bool = False
    face_cache: str = ""
    # Rehearsal while fine-tuning: up to rehearsal_per_class training images of each class,
    # drawn once (seeded) from this data dir's train/ (for example the FER2013 data the starting
    # model learned from), are mixed into every epoch. Empty: off.
    rehearsal_dir: str = ""
    rehearsal_per_class: int = 100
    # Repeat the photos of each smaller class of the training split (data_dir's and
    # more_dirs', before any rehearsal sample joins) until every class has as many as the largest.
    oversample: bool = False


@dataclasses.dataclass
class ModelConfig:
    """AlexNet builder options."""

    input_size: int = 227
    channels: int = 3
    width: float = 1.0  # multiplies every conv and FC width; 1.0 is the paper's AlexNet
    dropout: float = 0.5
    normalization: Normalization = "none"
    padding: Padding = "auto"
    conv1_stride: int = 0  # 0 picks 4, 2 or 1 from input_size
    # Average the probabilities of each image and its mirror image in the final evaluation and
    # in the export (test-time augmentation; twice the inference cost).
    test_time_flip: bool = False


@dataclasses.dataclass
class TrainConfig:
    """Optimisation and run bookkeeping."""

    epochs: int = 10
    optimizer: Optimizer = "adam"
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    class_weight: Literal["none", "balanced"] = "none"
    # Exponential moving average of the weights (0: off). At the end the average competes with
    # the best epoch on validation accuracy, after its BatchNorm statistics are re-estimated.
    ema_momentum: float = 0.0
    # Which weights the run keeps: "best" (the epoch with the best validation accuracy, written
    # to best.keras) or "last" (the last epoch, written to last.keras: chosen without validation).
    keep: Literal["best", "last"] = "best"
    seed: int = 1337
    strategy: Strategy = "auto"
    precision: Precision = "float32"
    run_dir: str = "runs/default"
    export_dir: str = ""  # empty: <run_dir>/export
    verbose: int = -1  # -1: progress bar on a terminal, one line per epoch otherwise
    # Bit-identical reruns and resumes: TF's deterministic ops (slower on some kernels).
    deterministic: bool = False
    # Start from a trained model: a run directory (its best.keras, else last.keras) or a
    # .keras file; its architecture must match `model`. Empty: random initialisation.
    init_from: str = ""
    # With init_from: keep the convolutional layers (conv1-conv5 and their normalization)
    # frozen for this many first epochs, so only the classifier adapts at first.
    freeze_conv_epochs: int = 0


@dataclasses.dataclass
class Config:
    """The whole run configuration."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def digest(self) -> str:
        """A stable hash of the resolved config, for provenance."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def validate(self) -> Config:
        _check_finite(self.to_dict())
        _check(self.data.batch_size >= 1, "data.batch_size", self.data.batch_size, ">= 1")
        _check(
            self.data.shuffle_buffer >= 1, "data.shuffle_buffer", self.data.shuffle_buffer, ">= 1"
        )
        _check(self.data.max_pixels >= 1, "data.max_pixels", self.data.max_pixels, ">= 1")
        _check(
            self.data.faces_per_photo >= 0,
            "data.faces_per_photo",
            self.data.faces_per_photo,
            ">= 0 (0 means every face)",
        )
        _check(
            self.data.rehearsal_per_class >= 1,
            "data.rehearsal_per_class",
            self.data.rehearsal_per_class,
            ">= 1",
        )
        aug = self.data.augment
        for name in ("rotation", "zoom", "translation", "brightness", "contrast"):
            value = getattr(aug, name)
            _check(0.0 <= value < 1.0, f"data.augment.{name}", value, "in [0, 1)")
        for name in ("erase", "blur", "downscale", "jpeg"):
            value = getattr(aug, name)
            _check(0.0 <= value <= 1.0, f"data.augment.{name}", value, "in [0, 1]")
        _check(aug.mixup >= 0.0, "data.augment.mixup", aug.mixup, ">= 0 (0 switches it off)")
        _check(
            16 <= self.model.input_size <= 1024,
            "model.input_size",
            self.model.input_size,
            "in [16, 1024]",
        )
        _check(self.model.channels in (1, 3), "model.channels", self.model.channels, "1 or 3")
        _check(0.0 < self.model.width <= 4.0, "model.width", self.model.width, "in (0, 4]")
        _check(0.0 <= self.model.dropout < 1.0, "model.dropout", self.model.dropout, "in [0, 1)")
        _check(
            self.model.conv1_stride in (0, 1, 2, 3, 4),
            "model.conv1_stride",
            self.model.conv1_stride,
            "0 (auto) or 1-4",
        )
        _check(self.train.epochs >= 1, "train.epochs", self.train.epochs, ">= 1")
        _check(self.train.learning_rate > 0, "train.learning_rate", self.train.learning_rate, "> 0")
        _check(self.train.weight_decay >= 0, "train.weight_decay", self.train.weight_decay, ">= 0")
        _check(
            0 <= self.train.label_smoothing < 1,
            "train.label_smoothing",
            self.train.label_smoothing,
            "in [0, 1)",
        )
        _check(
            0 <= self.train.ema_momentum < 1,
            "train.ema_momentum",
            self.train.ema_momentum,
            "in [0, 1) (0 switches the weight average off)",
        )
        _check(
            0 <= self.train.warmup_epochs < self.train.epochs,
            "train.warmup_epochs",
            self.train.warmup_epochs,
            "in [0, train.epochs)",
        )
        _check(bool(self.train.run_dir), "train.run_dir", self.train.run_dir, "a non-empty path")
        self._check_optimizer()
        _check(
            0 <= self.train.freeze_conv_epochs <= self.train.epochs,
            "train.freeze_conv_epochs",
            self.train.freeze_conv_epochs,
            "in [0, train.epochs]",
        )
        return self

    def _check_optimizer(self) -> None:
        """Refuse settings the chosen optimizer would silently ignore or misread."""
        train = self.train
        default_momentum = TrainConfig.momentum
        if train.optimizer != "sgd" and train.momentum != default_momentum:
            raise ConfigError(
                f"train.momentum is used by the sgd optimizer only, not {train.optimizer}. "
                f"Received: train.momentum={train.momentum!r} (set train.optimizer=sgd, or "
                "leave train.momentum out)"
            )
        if train.optimizer == "adam" and train.weight_decay:
            raise ConfigError(
                "adam with weight decay is adamw in Keras 3: set train.optimizer=adamw. "
                f"Received: train.weight_decay={train.weight_decay!r} with train.optimizer=adam"
            )


def _check_finite(values: dict[str, Any], prefix: str = "") -> None:
    """Refuse NaN and infinities anywhere: `learning_rate=inf` passes every `> 0` check."""
    for key, value in values.items():
        if isinstance(value, dict):
            _check_finite(value, f"{prefix}{key}.")
        elif isinstance(value, float):
            _check(math.isfinite(value), prefix + key, value, "a finite number")


def _check(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: expected {expected}. Received: {key}={value!r}")


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check `value` against a type hint, converting ints to floats where a float is wanted."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(f"{key}: expected one of {list(allowed)}. Received: {key}={value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list. Received: {key}={value!r}")
        (item_hint,) = typing.get_args(hint)
        return [_coerce(f"{key}[{i}]", item, item_hint) for i, item in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _coerce(key, value, option)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {hint}. Received: {key}={value!r}")
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
        try:
            return float(value)
        except ValueError:
            pass
    if hint is type(None) and value is None:
        return None
    if (
        isinstance(hint, type)
        and isinstance(value, hint)
        and not (hint is int and isinstance(value, bool))
    ):
        return value
    expected = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{key}: expected {expected}. Received: {key}={value!r}")


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in names:
            full = f"{prefix}{key}"
            raise ConfigError(
                f"unknown config key '{full}'. Known keys under '{prefix or '.'}': {sorted(names)}"
            )
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name not in values:
            continue
        full = f"{prefix}{field.name}"
        hint = hints[field.name]
        value = values[field.name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{full}: expected a mapping. Received: {full}={value!r}")
            kwargs[field.name] = _build(hint, value, f"{full}.")
        else:
            kwargs[field.name] = _coerce(full, value, hint)
    return cls(**kwargs)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def flat_settings(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config sections as dotted keys: {"data.augment.flip": True, ...}."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flat_settings(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def parse_override(text: str) -> dict[str, Any]:
    """Turn `train.epochs=3` into `{"train": {"epochs": 3}}`; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override must look like section.key=value. Received: {text!r}")
    dotted, raw = text.split("=", 1)
    parts = [p for p in dotted.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override has an empty key. Received: {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"{dotted}: value is not valid YAML. Received: {raw!r}") from err
    nested: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        nested = {part: nested}
    return nested


def load_config(
    path: str | Path | None = None,
    overrides: typing.Iterable[str] = (),
    extra: dict[str, Any] | None = None,
) -> Config:
    """Load a YAML config (or the defaults), apply overrides, validate, and return it."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from err
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        values = loaded
    for item in overrides:
        values = _merge(values, parse_override(item))
    if extra:
        values = _merge(values, extra)
    return _build(Config, values, "").validate()


def save_config(config: Config, path: Path) -> None:
    """Write the resolved config as YAML, atomically."""
    from emotion_tf.io_utils import atomic_write_text

    atomic_write_text(path, config.to_yaml())
