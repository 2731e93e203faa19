"""The FER2013 recipe (configs/fer2013.yaml) loads and trains on a subset of the shared data."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

RECIPE = REPO_ROOT / "configs" / "fer2013.yaml"


def test_recipe_config_loads_and_matches_the_data() -> None:
    from emotion_tf.config import load_config

    config = load_config(RECIPE)
    # 48x48 grayscale crops: the recipe must read them as they are.
    assert config.model.input_size == 48 and config.model.channels == 1
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
    result = train(load_config(RECIPE, overrides), export=False)
    rows = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [row["epoch"] for row in rows] == [1]
    assert math.isfinite(rows[0]["loss"]) and 0.0 <= rows[0]["val_accuracy"] <= 1.0
    assert (tmp_path / "run" / "best.keras").is_file()
    metrics = result.metrics
    assert metrics["count"] == 64
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert metrics["roc_auc"] is not None
    assert set(metrics["per_class"]) == {"happy", "sad"}
