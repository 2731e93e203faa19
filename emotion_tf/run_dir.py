"""The run folder `train` writes: its file names, and the one way to read each back.

Layout of RUN_DIR (names defined here only):
  config.yaml     resolved config            metrics.json   final validation metrics
  best.keras      best checkpoint            last.keras     last epoch (train.keep: last)
  best.best.json  best checkpoint's score    history.json / history.csv   per-epoch logs
  run_info.json   provenance                 report/        figures and report.html
  backup/         resume state               logs/          TensorBoard
  export/         SavedModel versions (unless train.export_dir is set)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from emotion_tf.config import Config, load_config
from emotion_tf.errors import ModelDirError
from emotion_tf.metrics import headline

CONFIG_FILE = "config.yaml"
BEST_CHECKPOINT = "best.keras"
LAST_CHECKPOINT = "last.keras"
BEST_STATE_FILE = "best.best.json"
METRICS_FILE = "metrics.json"
HISTORY_JSON = "history.json"
HISTORY_CSV = "history.csv"
RUN_INFO_FILE = "run_info.json"
REPORT_DIR = "report"
BACKUP_DIR = "backup"
LOGS_DIR = "logs"
EXPORT_DIR = "export"


@dataclasses.dataclass(frozen=True)
class RunDir:
    """Paths inside one run folder, and loaders that refuse anything else with one line."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def of(cls, config: Config) -> RunDir:
        return cls(Path(config.train.run_dir))

    # -- names ---------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def best_checkpoint(self) -> Path:
        return self.path / BEST_CHECKPOINT

    @property
    def last_checkpoint(self) -> Path:
        return self.path / LAST_CHECKPOINT

    @property
    def best_state_file(self) -> Path:
        return self.path / BEST_STATE_FILE

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def history_json(self) -> Path:
        return self.path / HISTORY_JSON

    @property
    def history_csv(self) -> Path:
        return self.path / HISTORY_CSV

    @property
    def run_info_file(self) -> Path:
        return self.path / RUN_INFO_FILE

    @property
    def report_dir(self) -> Path:
        return self.path / REPORT_DIR

    @property
    def backup_dir(self) -> Path:
        return self.path / BACKUP_DIR

    @property
    def logs_dir(self) -> Path:
        return self.path / LOGS_DIR

    def export_dir(self, config: Config | None = None) -> Path:
        """Where exports go: `train.export_dir` when the config sets one, else RUN_DIR/export."""
        if config is not None and config.train.export_dir:
            return Path(config.train.export_dir)
        return self.path / EXPORT_DIR

    def kept_checkpoint(self, config: Config) -> Path:
        """The checkpoint `train.keep` chose: best.keras, or last.keras for `keep: last`."""
        return self.last_checkpoint if config.train.keep == "last" else self.best_checkpoint

    # -- loaders -------------------------------------------------------------------------
    def require_finished(self) -> None:
        """Refuse a folder that is not a finished run (before anything imports TensorFlow)."""
        if not self.path.is_dir():
            what = "is a file" if self.path.exists() else "does not exist"
            raise ModelDirError(f"not a finished run directory: {self.path} {what}")
        for name in (CONFIG_FILE, METRICS_FILE):
            if not (self.path / name).is_file():
                raise ModelDirError(f"not a finished run directory: {self.path} has no {name}")
        checkpoint = self.kept_checkpoint(self.load_config())
        if not checkpoint.is_file():
            raise ModelDirError(
                f"not a finished run directory: {self.path} has no {checkpoint.name}"
            )

    def load_config(self) -> Config:
        if not self.config_file.is_file():
            raise ModelDirError(f"not a run directory: {self.path} has no {CONFIG_FILE}")
        return load_config(self.config_file)

    def load_metrics(self) -> dict[str, Any]:
        metrics = read_json(self.metrics_file)
        if metrics is None:
            raise ModelDirError(f"not a finished run directory: {self.path} has no {METRICS_FILE}")
        return metrics

    def load_history(self) -> list[dict[str, Any]]:
        return read_json(self.history_json, [])

    def load_run_info(self) -> dict[str, Any]:
        return read_json(self.run_info_file, {})

    def load_model(self, config: Config | None = None) -> Any:
        """The Keras model of the checkpoint the run kept (see `kept_checkpoint`)."""
        return load_checkpoint(self.kept_checkpoint(config or self.load_config()))


def read_json(path: Path, default: Any = None) -> Any:
    """A JSON file's content, `default` when it is missing; bad JSON is a ModelDirError."""
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelDirError(f"not valid JSON: {path} ({err})") from err


def load_checkpoint(path: Path) -> Any:
    """Load a `.keras` file with safe_mode, so that it may not run code; one line on failure."""
    path = Path(path)
    if not path.is_file():
        raise ModelDirError(f"checkpoint not found: {path}")
    import keras  # here, so a wrong path is refused before TensorFlow starts

    try:  # safe_mode: a checkpoint may not run code (Lambda layers, unknown objects)
        return keras.models.load_model(path, safe_mode=True)
    except (ValueError, TypeError, OSError) as err:
        reason = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise ModelDirError(f"cannot load {path} (loaded with safe_mode=True): {reason}") from err


@dataclasses.dataclass
class Run:
    """A finished run, read back: its config, kept model, class names and metrics."""

    path: Path
    config: Config
    model: Any
    class_names: list[str]
    metrics: dict[str, Any]

    @property
    def export_dir(self) -> Path:
        return RunDir(self.path).export_dir(self.config)

    def export_metadata(self) -> dict[str, Any]:
        return {"metrics": headline(self.metrics), "config_hash": self.config.digest()}


def load_run(path: Path) -> Run:
    """Load a run directory written by `train`, refusing anything else clearly."""
    run = RunDir(path)
    run.require_finished()
    config = run.load_config()
    metrics = run.load_metrics()
    model = run.load_model(config)
    return Run(run.path, config, model, list(metrics["class_names"]), metrics)


def find_run_dir(path: Path, levels: int = 3) -> RunDir | None:
    """The run folder `path` lies in (an export: `<run>/export/<version>`), if any."""
    path = Path(path)
    for candidate in (path, *path.parents[:levels]):
        run = RunDir(candidate)
        if run.config_file.is_file() and (
            run.best_checkpoint.is_file() or run.last_checkpoint.is_file()
        ):
            return run
    return None
