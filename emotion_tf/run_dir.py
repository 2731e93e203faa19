"""Read back a finished run directory: config, best checkpoint, metrics."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import keras

from emotion_tf.config import Config, load_config
from emotion_tf.errors import ModelDirError

CONFIG_FILE = "config.yaml"
CHECKPOINT_FILE = "best.keras"
METRICS_FILE = "metrics.json"


@dataclasses.dataclass
class Run:
    path: Path
    config: Config
    model: keras.Model
    class_names: list[str]
    metrics: dict[str, Any]

    @property
    def export_dir(self) -> Path:
        return self.config.resolved_export_dir()

    def export_metadata(self) -> dict[str, Any]:
        keys = ("accuracy", "balanced_accuracy", "roc_auc", "count")
        return {
            "metrics": {k: self.metrics[k] for k in keys if k in self.metrics},
            "config_hash": self.config.digest(),
        }


def load_run(path: Path) -> Run:
    """Load a run directory written by `train`, refusing anything else clearly."""
    path = Path(path)
    for name in (CONFIG_FILE, CHECKPOINT_FILE, METRICS_FILE):
        if not (path / name).is_file():
            raise ModelDirError(f"not a finished run directory: {path} has no {name}")
    config = load_config(path / CONFIG_FILE)
    metrics = json.loads((path / METRICS_FILE).read_text())
    try:  # safe_mode: a checkpoint may not run code (Lambda layers, unknown objects)
        model = keras.models.load_model(path / CHECKPOINT_FILE, safe_mode=True)
    except (ValueError, TypeError, OSError) as err:
        reason = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise ModelDirError(
            f"cannot load {path / CHECKPOINT_FILE} (loaded with safe_mode=True): {reason}"
        ) from err
    return Run(path, config, model, list(metrics["class_names"]), metrics)
