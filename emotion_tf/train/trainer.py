"""Train AlexNet from a Config: data scan, strategy, fit with checkpoints, metrics, export."""

from __future__ import annotations

import dataclasses
import logging
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from emotion_tf import __version__
from emotion_tf.config import Config, save_config
from emotion_tf.data.files import (
    BadFile,
    LabelledFiles,
    display_path,
    file_list_hash,
    load_splits,
    merge_splits,
    scan_split,
)
from emotion_tf.data.pipeline import (
    Split,
    num_examples,
    training_epochs,
    unaugmented_training_batches,
    validation_passes,
)
from emotion_tf.data.tfrecord import is_tfrecord_dir, load_record_splits, read_manifest
from emotion_tf.errors import ConfigError, ModelDirError
from emotion_tf.evaluate import predict_split
from emotion_tf.export import export_model, list_versions
from emotion_tf.io_utils import atomic_save_model, atomic_write_json
from emotion_tf.metrics import classification_metrics, headline
from emotion_tf.model.alexnet import build_alexnet
from emotion_tf.report.build import report_after_training
from emotion_tf.report.tensorboard import AugmentationPreview
from emotion_tf.run_dir import RunDir, load_checkpoint, read_json
from emotion_tf.train.averaging import apply_weight_average
from emotion_tf.train.callbacks import (
    AtomicBackupAndRestore,
    BestCheckpoint,
    EpochSeeds,
    HistoryWriter,
    StopOnNonFiniteLoss,
)
from emotion_tf.train.init_from import FreezeConvLayers, initialise_from, prepare_freezing
from emotion_tf.train.strategy import (
    agree_on_epoch,
    build_strategy,
    is_chief,
    prepare_multi_worker_fit,
    task_name,
    wait_for_all_workers,
    worker_failures_reported,
)

log = logging.getLogger(__name__)

AVERAGE_BATCHNORM_BATCHES = 100  # training batches that re-estimate BatchNorm for the average


@dataclasses.dataclass
class TrainResult:
    run_dir: Path
    export_path: Path | None
    metrics: dict[str, Any]
    skipped: list[BadFile]
    already_complete: bool = False  # the run had finished before: nothing was trained


@dataclasses.dataclass
class TrainingData:
    """The train and validation splits (folders or TFRecords) and what the scan left out."""

    splits: dict[str, Split]
    skipped: list[BadFile]
    data_format: str  # "folders" or "tfrecord"
    file_list_hash: str
    faces: dict[str, Any] = dataclasses.field(default_factory=dict)  # data.faces: detect
    rehearsal: dict[str, Any] = dataclasses.field(default_factory=dict)  # data.rehearsal_dir

    def summary(self) -> dict[str, Any]:
        """Counts for run_info.json: enough to audit what a run was trained on."""
        exif = {
            split: sum(o != 1 for o in files.orientation_list())
            for split, files in self.splits.items()
            if isinstance(files, LabelledFiles)
        }
        return {
            "data_format": self.data_format,
            "counts": {split: files.counts() for split, files in self.splits.items()},
            "file_list_hash": self.file_list_hash,
            "skipped_files": [
                {"path": display_path(b.path), "reason": b.reason} for b in self.skipped
            ],
            "ignored_non_images": sum(
                len(f.ignored) for f in self.splits.values() if isinstance(f, LabelledFiles)
            ),
            "exif_rotated": exif,
            **({"faces": self.faces} if self.faces else {}),
            **({"rehearsal": self.rehearsal} if self.rehearsal else {}),
        }


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
    ema = {"use_ema": bool(train.ema_momentum), "ema_momentum": train.ema_momentum or 0.99}
    if train.optimizer == "sgd":
        return keras.optimizers.SGD(
            rate,
            momentum=train.momentum,
            nesterov=True,
            weight_decay=train.weight_decay or None,
            **ema,
        )
    if train.optimizer == "adamw":
        return keras.optimizers.AdamW(rate, weight_decay=train.weight_decay, **ema)
    return keras.optimizers.Adam(rate, weight_decay=train.weight_decay or None, **ema)


def check_precision(precision: str) -> None:
    """Refuse float16 without a GPU: CPUs have no fast float16 maths, so it crawls or looks hung."""
    if precision == "mixed_float16" and not tf.config.list_physical_devices("GPU"):
        raise ConfigError(
            "train.precision=mixed_float16 needs a GPU (on a CPU float16 runs many times slower "
            "than float32); use train.precision=float32, or mixed_bfloat16 on a CPU with "
            "avx512_bf16 or AMX"
        )
    if (
        precision == "mixed_bfloat16"
        and not tf.config.list_physical_devices("GPU")
        and not cpu_has_native_bfloat16()
    ):
        log.warning(
            "train.precision=mixed_bfloat16 on a CPU without avx512_bf16 or AMX: bfloat16 is "
            "emulated here and runs several times slower than float32; "
            "--set train.precision=float32 is faster on this machine"
        )


def cpu_has_native_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU computes bfloat16 in hardware (avx512_bf16 or AMX); True where unknown."""
    try:
        flags = cpuinfo.read_text(errors="replace").split()
    except OSError:
        return True  # not Linux: nothing to say
    return "avx512_bf16" in flags or "amx_bf16" in flags


def class_weights(files: Split) -> dict[int, float]:
    """Weights inversely proportional to class frequency, averaging 1 over the samples."""
    counts = np.array(list(files.counts().values()))
    total = counts.sum()
    return {i: float(total / (len(counts) * c)) for i, c in enumerate(counts) if c}


def load_training_data(config: Config) -> TrainingData:
    """List and scan the data dir (folders), or read a TFRecord manifest; log what is left out."""
    data_dir = Path(config.data.data_dir)
    if is_tfrecord_dir(data_dir) and config.data.faces == "detect":
        raise ConfigError(
            "data.faces=detect needs a folder of photos, not TFRecords: "
            f"{data_dir} (convert the face crops with `emotion-tf data crop-faces` first)"
        )
    if is_tfrecord_dir(data_dir) and config.data.rehearsal_dir:
        raise ConfigError(f"data.rehearsal_dir needs a folder of images, not TFRecords: {data_dir}")
    if is_tfrecord_dir(data_dir):
        manifest = read_manifest(data_dir)
        skipped = [
            BadFile(item["path"], f"{item['reason']} (left out by to-tfrecord)")
            for info in manifest["splits"].values()
            for item in info.get("skipped_files", [])
        ]
        return TrainingData(
            load_record_splits(data_dir), skipped, "tfrecord", manifest.get("file_list_hash", "")
        )
    splits = load_splits(data_dir)
    for more in config.data.more_dirs:
        splits = merge_splits(splits, load_splits(Path(more)), more)
    started = time.monotonic()
    skipped: list[BadFile] = []
    for split, files in list(splits.items()):
        splits[split], bad = scan_split(files, config.data.max_pixels)
        for item in bad:
            log.warning("skipping %s: %s", display_path(item.path), item.reason)
        if bad:
            log.warning("%d unusable file(s) left out of %s", len(bad), split)
        skipped.extend(bad)
    from emotion_tf.data.tools.check import scan_duplicates  # the scan `data check` runs

    for line in scan_duplicates(splits).warnings():
        log.warning("%s; `emotion-tf data check %s` lists them", line, data_dir)
    log.info(
        "scanned %d files in %.1fs",
        sum(len(f.paths) for f in splits.values()),
        time.monotonic() - started,
    )
    data_hash = file_list_hash(splits, data_dir)
    faces: dict[str, Any] = {}
    if config.data.faces == "detect":
        from emotion_tf.faces.training_crops import crop_split

        started = time.monotonic()
        for split, files in list(splits.items()):
            splits[split], summary = crop_split(files, config, split)
            faces[split] = summary.to_dict()
        faces.update(
            {
                "detector": config.data.detector,
                "align": config.data.align,
                "no_face": config.data.no_face,
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    if config.data.oversample:
        from emotion_tf.data.balance import oversample

        splits["train"] = oversample(splits["train"], config.train.seed)
        log.info("oversampled train: %s", splits["train"].counts())
    rehearsal: dict[str, Any] = {}
    if config.data.rehearsal_dir:
        from emotion_tf.data.rehearsal import add_rehearsal

        splits["train"], rehearsal, bad = add_rehearsal(splits["train"], config)
        skipped.extend(bad)
        log.info("rehearsal: %s from %s mixed into train", rehearsal["counts"], rehearsal["dir"])
    return TrainingData(splits, skipped, "folders", data_hash, faces, rehearsal)


def _verbosity(setting: int) -> int:
    if setting >= 0:
        return setting
    return 1 if sys.stdout.isatty() else 2


def _shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Each worker keeps its share of every global batch (tf.data's DATA auto-shard).

    Every worker runs the same seeded pipeline, so the replicas of a step together see exactly
    the batch one worker would have seen: results match a single-worker run.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _resume_point(strategy: tf.distribute.Strategy, backup_dir: Path, epochs: int) -> int:
    """The number of epochs already finished according to the backup (all workers agree)."""
    first_epoch = agree_on_epoch(strategy, AtomicBackupAndRestore.saved_epochs(backup_dir))
    if first_epoch >= epochs:
        raise ConfigError(
            f"train.epochs={epochs} but the backup in {backup_dir} has already "
            f"finished epoch {first_epoch}: raise train.epochs or delete the backup"
        )
    if first_epoch:
        log.info("resuming after epoch %d from the backup in %s", first_epoch, backup_dir)
    return first_epoch


def _run_info(
    config: Config, strategy: tf.distribute.Strategy, data: TrainingData, first_epoch: int
) -> dict[str, Any]:
    """Provenance for run_info.json: versions, strategy, data counts and file-list hash."""
    return {
        "package_version": __version__,
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "python_version": platform.python_version(),
        "strategy": type(strategy).__name__,
        "replicas": strategy.num_replicas_in_sync,
        "task": task_name() or None,
        "deterministic": config.train.deterministic,
        "resumed_after_epoch": first_epoch,
        "config_hash": config.digest(),
        "data_dir": str(Path(config.data.data_dir).resolve()),
        **data.summary(),
    }


def completed_run(run: RunDir, config: Config) -> TrainResult | None:
    """The results of a run that already finished (its metrics.json exists), else None."""
    try:
        metrics = read_json(run.metrics_file)
    except ModelDirError:
        return None  # a broken record of a run is no reason not to train
    if metrics is None:
        return None
    export_dir = run.export_dir(config)
    versions = list_versions(export_dir)
    export_path = export_dir / str(versions[-1]) if versions else None
    return TrainResult(run.path, export_path, metrics, [], already_complete=True)


def train(config: Config, export: bool = True, overwrite: bool = False) -> TrainResult:
    """Run a full training job described by `config` and return where its results are.

    A run that already finished is not trained again unless `overwrite`: its results come
    back with `already_complete` set. Nothing is written before the data has been checked.
    """
    run = RunDir.of(config)
    if not overwrite:
        done = completed_run(run, config)
        if done is not None:
            log.info("run %s is already complete; nothing to do", run.path)
            return done
    strategy = build_strategy(config.train.strategy)  # first: multi-worker must precede TF ops
    keras.utils.set_random_seed(config.train.seed)
    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    check_precision(config.train.precision)
    keras.mixed_precision.set_global_policy(config.train.precision)
    chief = is_chief()
    data = load_training_data(config)  # before anything is written: bad inputs leave no trace
    # A non-chief worker keeps its backup and logs in a folder of its own, removed at the end.
    work = run if chief else RunDir(run.path / f".{task_name() or 'worker'}")
    work.path.mkdir(parents=True, exist_ok=True)
    if chief:
        save_config(config, run.config_file)
    train_files, val_files = data.splits["train"], data.splits["validation"]
    class_names = train_files.class_names
    log.info(
        "classes %s; train %s; validation %s", class_names, train_files.counts(), val_files.counts()
    )

    backup_dir = work.backup_dir
    first_epoch = _resume_point(strategy, backup_dir, config.train.epochs)
    replicas = strategy.num_replicas_in_sync
    train_ds, steps = training_epochs(train_files, config, replicas, first_epoch)
    val_ds, val_steps = validation_passes(val_files, config, replicas)
    if replicas > 1 or config.train.strategy == "multi_worker":
        train_ds, val_ds = _shard_by_data(train_ds), _shard_by_data(val_ds)
    for split, count in (("train", steps), ("validation", val_steps)):
        if count < 1:
            raise ConfigError(
                f"data.batch_size={config.data.batch_size} is larger than the "
                f"{num_examples(data.splits[split])} {split} images ({replicas} replicas "
                "need full batches)"
            )

    with strategy.scope():
        model = build_alexnet(config.model, len(class_names))
        if config.train.init_from and first_epoch == 0:  # a resume restores its own weights
            initialise_from(model, config.train.init_from, class_names)
        model.compile(
            optimizer=build_optimizer(config, steps),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.train.label_smoothing),
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        )
        if config.train.freeze_conv_epochs:
            prepare_freezing(model)
    size, channels = config.model.input_size, config.model.channels
    prepare_multi_worker_fit(model, strategy, (size, size, channels), len(class_names))
    log.info(
        "AlexNet with %s parameters, input %dx%dx%d",
        f"{model.count_params():,}",
        config.model.input_size,
        config.model.input_size,
        config.model.channels,
    )

    checkpoint = BestCheckpoint(
        run.best_checkpoint, state_path=run.best_state_file, enabled=chief, resume=first_epoch > 0
    )
    freezing = [FreezeConvLayers(config.train.freeze_conv_epochs)]
    callbacks = [
        StopOnNonFiniteLoss(),  # first: a diverged epoch must not be checkpointed
        *(freezing if config.train.freeze_conv_epochs else []),
        EpochSeeds(),
        checkpoint,
        HistoryWriter(run, enabled=chief, first_epoch=first_epoch),
        keras.callbacks.TensorBoard(str(work.logs_dir), write_graph=False),
        AugmentationPreview(work.logs_dir, train_files, config, enabled=chief),
        # Last, so an epoch counts as done only after its checkpoint and history are written.
        AtomicBackupAndRestore(backup_dir, resume_epoch=first_epoch),
    ]
    fit_started = time.monotonic()
    with worker_failures_reported(strategy):
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=config.train.epochs,
            initial_epoch=first_epoch,
            steps_per_epoch=steps,
            validation_steps=val_steps,
            callbacks=callbacks,
            class_weight=class_weights(train_files)
            if config.train.class_weight == "balanced"
            else None,
            verbose=_verbosity(config.train.verbose),
            shuffle=False,  # the dataset shuffles itself
        )
    train_seconds = time.monotonic() - fit_started

    average_accuracy = None
    if config.train.ema_momentum:
        average_accuracy = _offer_weight_average(model, config, train_files, val_files, checkpoint)
    if config.train.keep == "last":  # the last epoch's weights, or their average
        if chief:
            atomic_save_model(model, run.last_checkpoint)
        checkpoint.kept = "weight_average" if config.train.ema_momentum else "last_epoch"
    elif chief and run.best_checkpoint.is_file():
        model = load_checkpoint(run.best_checkpoint)
    final = predict_split(model, val_files, config, flip=config.model.test_time_flip)
    metrics = classification_metrics(final.labels, final.probabilities, class_names)
    metrics.update(
        {
            "split": "validation",
            "best_epoch_val_accuracy": checkpoint.best_epoch_value,
            "weight_average_val_accuracy": average_accuracy,
            "kept_weights": checkpoint.kept,
            "train_seconds": round(train_seconds, 1),
            "skipped_files": len(data.skipped),
        }
    )
    export_path = None
    if chief:
        atomic_write_json(run.metrics_file, metrics)
        atomic_write_json(run.run_info_file, _run_info(config, strategy, data, first_epoch))
        if export:
            export_path = export_model(
                model,
                run.export_dir(config),
                class_names,
                metadata={"metrics": headline(metrics), "config_hash": config.digest()},
                test_time_flip=config.model.test_time_flip,
            )
            log.info("exported SavedModel to %s", export_path)
        report_after_training(run.path, model, val_files)  # logs, never raises
    else:
        shutil.rmtree(work.path, ignore_errors=True)
    wait_for_all_workers(strategy)
    return TrainResult(run.path, export_path, metrics, data.skipped)


def _offer_weight_average(
    model: keras.Model,
    config: Config,
    train_files: Split,
    val_files: Split,
    checkpoint: BestCheckpoint,
) -> float:
    """Swap in the EMA weights; they become best.keras if they score at least the best epoch.

    Returns their validation accuracy (without test-time flips, like the epochs' figure).
    """
    bn_data = unaugmented_training_batches(train_files, config)
    apply_weight_average(model, bn_data, max_batches=AVERAGE_BATCHNORM_BATCHES)
    accuracy = predict_split(model, val_files, config, flip=False).accuracy
    log.info(
        "weight average (EMA %.4g): validation accuracy %.4f; best epoch %.4f",
        config.train.ema_momentum,
        accuracy,
        checkpoint.best,
    )
    checkpoint.offer(accuracy, "weight_average")
    return accuracy
