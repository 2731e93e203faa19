"""The FER2013 recipe (configs/fer2013.yaml) loads and trains on a subset of the shared data."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO_ROOT

RECIPE = REPO_ROOT / "configs" / "fer2013.yaml"


def test_recipe_config_loads_and_matches_the_data() -> None:
    from emotion_tf.config import load_config

    config = load_config(RECIPE)
    # 48x48 grayscale crops: one channel, and no size that throws pixels away.
    assert config.model.channels == 1 and config.model.input_size >= 48
    assert config.data.data_dir == "../shared/data/fer2013-happy-sad"
    # The files are listed class by class: the buffer must hold the whole training set
    # (12,045 images) or batches come out single-class.
    assert config.data.shuffle_buffer >= 12045
    assert config.train.class_weight == "balanced"


def _subset(fer_dir: Path, out: Path, per_class: dict[str, int]) -> Path:
    """out/<split>/<class>/ symlinks to the first images of each class of fer_dir."""
    for split, count in per_class.items():
        for name in ("happy", "sad"):
            target = out / split / name
            target.mkdir(parents=True)
            for path in sorted((fer_dir / split / name).iterdir())[:count]:
                os.symlink(path, target / path.name)
    return out


@pytest.mark.slow
@pytest.mark.shared_data
def test_recipe_trains_one_epoch_on_a_fer_subset(fer_dir: Path, tmp_path: Path) -> None:
    from emotion_tf.config import load_config
    from emotion_tf.train.trainer import train

    data = _subset(fer_dir, tmp_path / "data", {"train": 96, "validation": 32})
    overrides = [
        f"data.data_dir={data}",
        f"train.run_dir={tmp_path / 'run'}",
        "train.epochs=1",
        "train.warmup_epochs=0",
        "model.width=0.125",
        "train.verbose=0",
    ]
    config = load_config(RECIPE, overrides)
    result = train(config, export=False)
    rows = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [row["epoch"] for row in rows] == [1]
    assert math.isfinite(rows[0]["loss"])
    metrics = result.metrics
    assert metrics["count"] == 64
    assert set(metrics["per_class"]) == {"happy", "sad"}
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.sum() == 64 and matrix.sum(axis=1).tolist() == [32, 32]
    assert metrics["accuracy"] == pytest.approx(np.trace(matrix) / 64)
    # metrics.json is the recipe's evaluation (test-time flip) of best.keras, repeatable.
    import keras

    from emotion_tf.data.files import load_splits
    from emotion_tf.evaluate import predict_split
    from emotion_tf.metrics import classification_metrics

    model = keras.models.load_model(tmp_path / "run" / "best.keras")
    split = load_splits(data)["validation"]
    again = predict_split(model, split, config, flip=config.model.test_time_flip)
    recomputed = classification_metrics(again.labels, again.probabilities, ["happy", "sad"])
    assert recomputed["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-9)
    assert recomputed["roc_auc"] == pytest.approx(metrics["roc_auc"], abs=1e-6)
    # The epoch's figure is the same model without the flip.
    plain = predict_split(model, split, config, flip=False)
    assert plain.accuracy == pytest.approx(rows[0]["val_accuracy"], abs=1e-6)


def test_test_time_flip_averages_image_and_mirror(tmp_path: Path) -> None:
    import keras
    from PIL import Image

    from emotion_tf.config import load_config
    from emotion_tf.data.files import LabelledFiles
    from emotion_tf.evaluate import predict_split
    from emotion_tf.export import LoadedExport, export_model
    from emotion_tf.model.alexnet import build_alexnet

    config = load_config(
        RECIPE,
        [
            "model.input_size=32",
            "model.width=0.0625",
            "model.test_time_flip=true",
            "data.batch_size=4",
        ],
    )
    keras.utils.set_random_seed(3)
    model = build_alexnet(config.model, 2)
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 1), dtype=np.uint8)
    x = images.astype("float32")
    plain = model(x, training=False).numpy()
    mirrored = model(x[:, :, ::-1], training=False).numpy()
    assert not np.allclose(plain, mirrored, atol=1e-4)  # the test would prove nothing
    expected = (plain + mirrored) / 2

    paths = []
    for i, image in enumerate(images):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image[..., 0]).save(paths[-1])
    split = LabelledFiles(["happy", "sad"], paths, [0, 1, 0, 1, 0, 1])
    predictions = predict_split(model, split, config, flip=True)
    np.testing.assert_array_equal(predictions.labels, [0, 1, 0, 1, 0, 1])
    np.testing.assert_allclose(predictions.probabilities, expected, atol=1e-5)

    path = export_model(model, tmp_path / "export", ["happy", "sad"], test_time_flip=True)
    loaded = LoadedExport(path)
    assert loaded.metadata["test_time_flip"] is True
    np.testing.assert_allclose(loaded.predict_images(images)["probabilities"], expected, atol=1e-5)
    # The one-view signature (the video path's) runs one pass: the image, or its mirror.
    assert loaded.has_one_view and "serving_images_one_view" in loaded.metadata["signatures"]
    np.testing.assert_allclose(loaded.predict_one_view(images)["probabilities"], plain, atol=1e-5)
    np.testing.assert_allclose(
        loaded.predict_one_view(images[:, :, ::-1])["probabilities"], mirrored, atol=1e-5
    )
    plain_export = LoadedExport(export_model(model, tmp_path / "plain", ["happy", "sad"]))
    assert not plain_export.has_one_view  # without the flip, serving_images is one view
