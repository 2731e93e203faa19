"""Weight averaging: EMA weights swapped in at the end, BatchNorm re-estimated, kept if better."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from emotion_tf.config import load_config
from emotion_tf.data.files import load_splits
from emotion_tf.evaluate import predict_split
from emotion_tf.train.averaging import apply_weight_average, refresh_batchnorm_statistics
from emotion_tf.train.callbacks import BestCheckpoint
from emotion_tf.train.trainer import train
from tests.conftest import tiny_overrides


def _bn_model() -> keras.Model:
    inputs = keras.Input((2, 2, 3))
    x = keras.layers.BatchNormalization(momentum=0.9, name="bn")(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs)


def test_refresh_sets_batchnorm_to_the_mean_over_batches() -> None:
    model = _bn_model()
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc, 1.0, (4, 2, 2, 3)).astype("float32") for loc in (0.0, 5.0, 10.0)]
    dataset = tf.data.Dataset.from_tensor_slices(
        (np.stack(batches), np.zeros((3, 4, 2), "float32"))
    )
    used = refresh_batchnorm_statistics(model, dataset, max_batches=10)
    bn = model.get_layer("bn")
    assert used == 3
    expected_mean = np.mean([b.mean(axis=(0, 1, 2)) for b in batches], axis=0)
    expected_var = np.mean([b.var(axis=(0, 1, 2)) for b in batches], axis=0)
    np.testing.assert_allclose(bn.moving_mean.numpy(), expected_mean, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(), expected_var, rtol=1e-3, atol=1e-3)
    assert bn.momentum == 0.9  # restored


def test_average_replaces_the_trained_weights() -> None:
    model = _bn_model()
    model.compile(keras.optimizers.Adam(0.1, use_ema=True, ema_momentum=0.5), "mse")
    x = np.random.default_rng(1).normal(size=(16, 2, 2, 3)).astype("float32")
    y = np.tile([[1.0, 0.0]], (16, 1)).astype("float32")
    for start in range(0, 16, 4):  # train_on_batch: fit() would swap the average in itself
        model.train_on_batch(x[start : start + 4], y[start : start + 4])
    averages = [v.numpy() for v in model.optimizer._model_variables_moving_average]
    last = [v.numpy() for v in model.trainable_variables]
    assert any(not np.allclose(a, b) for a, b in zip(averages, last))
    apply_weight_average(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(4), 2)
    for variable, average in zip(model.trainable_variables, averages):
        np.testing.assert_allclose(variable.numpy(), average, rtol=1e-6)


def test_offer_keeps_the_better_model_only(tmp_path: Path) -> None:
    model = _bn_model()
    checkpoint = BestCheckpoint(tmp_path / "best.keras")
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"val_accuracy": 0.8})
    before = (tmp_path / "best.keras").stat().st_mtime_ns
    assert not checkpoint.offer(0.7, "weight_average")
    assert (tmp_path / "best.keras").stat().st_mtime_ns == before
    assert checkpoint.kept == "best_epoch" and checkpoint.best == 0.8
    assert checkpoint.offer(0.85, "weight_average")
    state = json.loads((tmp_path / "best.best.json").read_text())
    assert state["weights"] == "weight_average" and state["best"] == 0.85
    assert checkpoint.kept == "weight_average" and checkpoint.best_epoch_value == 0.8


def test_training_with_ema_reports_and_keeps_a_model(tiny_data_dir: Path, tmp_path: Path) -> None:
    # Default strategy only: a second MirroredStrategy model in the same process reuses
    # collective instance keys (TF), which broke test_end_to_end's 2-replica run after this.
    run_dir = tmp_path / "run"
    config = load_config(
        None,
        tiny_overrides(
            run_dir,
            tiny_data_dir,
            **{
                "train.epochs": 2,
                "train.ema_momentum": 0.9,
                "model.normalization": "batch_norm",
            },
        ),
    )
    result = train(config, export=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    average, best_epoch = metrics["weight_average_val_accuracy"], metrics["best_epoch_val_accuracy"]
    # The rule: the average replaces the best epoch when it scores at least as well.
    expected = "weight_average" if average >= best_epoch else "best_epoch"
    assert metrics["kept_weights"] == expected
    state = json.loads((run_dir / "best.best.json").read_text())
    assert state["best"] == max(average, best_epoch)
    assert state.get("weights", "best_epoch") == expected
    # best.keras holds the kept weights: evaluated again (no flip, like both figures), it
    # scores the figure that won.
    kept = keras.models.load_model(run_dir / "best.keras")
    again = predict_split(kept, load_splits(tiny_data_dir)["validation"], config, flip=False)
    assert again.accuracy == pytest.approx(max(average, best_epoch), abs=1e-6)
    assert result.metrics["accuracy"] == metrics["accuracy"]


def test_keep_last_with_ema_keeps_the_average_without_choosing(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    # keep: last means no choice on validation: the average is kept whatever it scores.
    run_dir = tmp_path / "run"
    overrides = {
        "train.epochs": 2,
        "train.ema_momentum": 0.9,
        "train.keep": "last",
        "model.normalization": "batch_norm",
    }
    config = load_config(None, tiny_overrides(run_dir, tiny_data_dir, **overrides))
    train(config, export=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["kept_weights"] == "weight_average"
    kept = keras.models.load_model(run_dir / "last.keras")
    again = predict_split(kept, load_splits(tiny_data_dir)["validation"], config, flip=False)
    assert again.accuracy == pytest.approx(metrics["weight_average_val_accuracy"], abs=1e-6)


def test_ema_momentum_out_of_range_is_a_config_error() -> None:
    from emotion_tf.errors import ConfigError

    with pytest.raises(ConfigError, match="train.ema_momentum"):
        load_config(None, ["train.ema_momentum=1.0"])
