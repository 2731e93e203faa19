"""A short run on real FER2013 happy/sad faces must beat the 58.7% majority baseline clearly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from emotion_tf.config import load_config
from emotion_tf.train.trainer import train

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


def _subset(source: Path, target: Path, per_class: dict[str, int]) -> None:
    """Symlink the first N sorted images of each class: a deterministic subset, no copies."""
    for split, limit in per_class.items():
        for class_dir in sorted((source / split).iterdir()):
            out = target / split / class_dir.name
            out.mkdir(parents=True)
            for path in sorted(class_dir.iterdir())[:limit]:
                os.symlink(path, out / path.name)


def test_short_run_beats_majority_baseline(fer_dir, tmp_path):
    data = tmp_path / "fer"
    # More images for fewer epochs: 2500 per class x 4 epochs scored 0.707 (1500 x 8: 0.733, in
    # 1.5x the time; 2000 x 4: 0.693), on 2 cores under load, 2026-12-01.
    _subset(fer_dir, data, {"train": 2500, "validation": 300})
    config = load_config(
        None,
        [
            f"data.data_dir={data}",
            f"train.run_dir={tmp_path / 'run'}",
            "model.input_size=48",
            "model.channels=1",
            "model.width=0.25",
            "model.normalization=none",
            "data.batch_size=64",
            "train.epochs=4",
            "train.learning_rate=0.0005",
            "train.verbose=0",
            "data.augment.rotation=0",
            "data.augment.zoom=0.05",
        ],
    )
    result = train(config, export=False)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(result.metrics["accuracy"])
    assert result.metrics["count"] == 600
    # Balanced 300/300 subset: chance is 50%, the full set's majority baseline 58.7%.
    assert result.metrics["accuracy"] >= 0.65, result.metrics
