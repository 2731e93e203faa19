"""Train AlexNet from a Config: data scan, strategy, fit with checkpoints, metrics, export."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from emotion_tf import __version__
from emotion_tf.config import Config, save_config
from emotion_tf.data.files import BadFile, LabelledFiles, drop_bad, load_splits, scan_images
from emotion_tf.data.pipeline import build_dataset
from emotion_tf.export import export_model
from emotion_tf.io_utils import atomic_write_json
from emotion_tf.metrics import classification_metrics
from emotion_tf.model.alexnet import build_alexnet
from emotion_tf.train.callbacks import BestCheckpoint, HistoryWriter
from emotion_tf.train.strategy import build_strategy, is_chief

log = logging.getLogger(__name__)

BEST_CHECKPOINT = "best.keras"


@dataclasses.dataclass
class TrainResult:
    run_dir: Path
    export_path: Path | None
    metrics: dict[str, Any]
    skipped: list[BadFile]


def build_optimizer(config: Config, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    train = config.train
    rate: Any = train.learning_rate
    if train.schedule == "cosine":
        warmup = train.warmup_epochs * steps_per_epoch
        rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=train.learning_rate if not warmup else 0.0,
            decay_steps=max(1, (train.epochs - train.warmup_epochs) * steps_per_epoch),
            warmup_target=train.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    if train.optimizer == "sgd":
        return keras.optimizers.SGD(
            rate, momentum=train.momentum, nesterov=True, weight_decay=train.weight_decay or None
        )
    if train.optimizer == "adamw":
        return keras.optimizers.AdamW(rate, weight_decay=train.weight_decay)
    return keras.optimizers.Adam(rate, weight_decay=train.weight_decay or None)


def class_weights(files: LabelledFiles) -> dict[int, float]:
    """Weights inversely proportional to class frequency, averaging 1 over the samples."""
    counts = np.bincount(files.labels, minlength=len(files.class_names))
    total = counts.sum()
    return {i: float(total / (len(counts) * c)) for i, c in enumerate(counts) if c}


def file_list_hash(files: dict[str, LabelledFiles]) -> str:
    digest = hashlib.sha256()
    for split, split_files in sorted(files.items()):
        for path, label in zip(split_files.paths, split_files.labels):
            digest.update(f"{split}\t{label}\t{path}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:16]


def predict_probabilities(model: keras.Model, dataset: tf.data.Dataset) -> tuple[np.ndarray, ...]:
    labels, probs = [], []
    for images, one_hot in dataset:
        probs.append(model(images, training=False).numpy())
        labels.append(np.argmax(one_hot.numpy(), axis=1))
    return np.concatenate(labels), np.concatenate(probs)


def _verbosity(setting: int) -> int:
    if setting >= 0:
        return setting
    return 1 if sys.stdout.isatty() else 2


def train(config: Config, export: bool = True) -> TrainResult:
    """Run a full training job described by `config` and return where its results are."""
    strategy = build_strategy(config.train.strategy)  # first: multi-worker must precede TF ops
    keras.utils.set_random_seed(config.train.seed)
    keras.mixed_precision.set_global_policy(config.train.precision)
    chief = is_chief()
    run_dir = Path(config.train.run_dir)
    work_dir = run_dir if chief else run_dir / f".worker-{id(strategy)}"
    work_dir.mkdir(parents=True, exist_ok=True)
    if chief:
        save_config(config, run_dir / "config.yaml")

    splits = load_splits(Path(config.data.data_dir))
    started = time.monotonic()
    skipped: list[BadFile] = []
    for split, files in list(splits.items()):
        bad = scan_images(files.paths, config.data.max_pixels)
        for item in bad:
            log.warning("skipping %s: %s", item.path, item.reason)
        if bad:
            log.warning("%d undecodable file(s) left out of %s", len(bad), split)
            splits[split] = drop_bad(files, bad)
        skipped.extend(bad)
    log.info(
        "scanned %d files in %.1fs",
        sum(len(f.paths) for f in splits.values()),
        time.monotonic() - started,
    )
    train_files, val_files = splits["train"], splits["validation"]
    class_names = train_files.class_names
    log.info(
        "classes %s; train %s; validation %s", class_names, train_files.counts(), val_files.counts()
    )

    replicas = strategy.num_replicas_in_sync
    train_ds = build_dataset(train_files, config, training=True, num_replicas=replicas)
    val_ds = build_dataset(val_files, config, training=False, num_replicas=replicas)
    if replicas > 1 or config.train.strategy == "multi_worker":
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        train_ds = train_ds.with_options(options)
        val_ds = val_ds.with_options(options)
    steps = (
        len(train_files.paths) // config.data.batch_size
        if replicas > 1
        else math.ceil(len(train_files.paths) / config.data.batch_size)
    )
    if steps < 1:
        raise ValueError(
            f"data.batch_size={config.data.batch_size} is larger than the "
            f"{len(train_files.paths)} training images with {replicas} replicas"
        )

    with strategy.scope():
        model = build_alexnet(config.model, len(class_names))
        model.compile(
            optimizer=build_optimizer(config, steps),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.train.label_smoothing),
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        )
    log.info(
        "AlexNet with %s parameters, input %dx%dx%d",
        f"{model.count_params():,}",
        config.model.input_size,
        config.model.input_size,
        config.model.channels,
    )

    checkpoint = BestCheckpoint(run_dir / BEST_CHECKPOINT, enabled=chief)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(work_dir / "backup")),
        checkpoint,
        HistoryWriter(run_dir, enabled=chief),
        keras.callbacks.TensorBoard(str(work_dir / "logs"), write_graph=False),
    ]
    fit_started = time.monotonic()
    model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=config.train.epochs,
        callbacks=callbacks,
        class_weight=class_weights(train_files)
        if config.train.class_weight == "balanced"
        else None,
        verbose=_verbosity(config.train.verbose),
        shuffle=False,  # the dataset shuffles itself
    )
    train_seconds = time.monotonic() - fit_started

    best_path = run_dir / BEST_CHECKPOINT
    if chief and best_path.is_file():
        model = keras.models.load_model(best_path, safe_mode=True)
    labels, probabilities = predict_probabilities(model, build_dataset(val_files, config, False))
    metrics = classification_metrics(labels, probabilities, class_names)
    metrics.update(
        {
            "split": "validation",
            "best_epoch_val_accuracy": checkpoint.best if math.isfinite(checkpoint.best) else None,
            "train_seconds": round(train_seconds, 1),
            "skipped_files": len(skipped),
        }
    )
    run_info = {
        "package_version": __version__,
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "python_version": platform.python_version(),
        "strategy": type(strategy).__name__,
        "replicas": replicas,
        "config_hash": config.digest(),
        "data_dir": str(Path(config.data.data_dir).resolve()),
        "counts": {split: files.counts() for split, files in splits.items()},
        "file_list_hash": file_list_hash(splits),
        "skipped_files": [dataclasses.asdict(b) for b in skipped],
        "ignored_non_images": sum(len(f.ignored) for f in splits.values()),
    }
    export_path = None
    if chief:
        atomic_write_json(run_dir / "metrics.json", metrics)
        atomic_write_json(run_dir / "run_info.json", run_info)
        if export:
            export_path = export_model(
                model,
                config.resolved_export_dir(),
                class_names,
                metadata={"metrics": _headline(metrics), "config_hash": config.digest()},
            )
            log.info("exported SavedModel to %s", export_path)
    return TrainResult(run_dir, export_path, metrics, skipped)


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    keys = ("accuracy", "balanced_accuracy", "roc_auc", "count")
    return {k: metrics[k] for k in keys if k in metrics}
