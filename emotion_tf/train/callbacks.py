"""Callbacks that write run artefacts atomically and survive a resumed run."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from pathlib import Path
from typing import Any

import keras

from emotion_tf.errors import ModelDirError, NonFiniteError
from emotion_tf.io_utils import (
    atomic_save_model,
    atomic_save_weights,
    atomic_write_json,
    atomic_write_text,
)
from emotion_tf.run_dir import RunDir


class BestCheckpoint(keras.callbacks.Callback):
    """Save the model as `.keras` when `monitor` improves; write to a temp file, then rename."""

    def __init__(
        self,
        path: Path,
        monitor: str = "val_accuracy",
        state_path: Path | None = None,
        enabled: bool = True,
        resume: bool = False,
    ):
        super().__init__()
        self.path = Path(path)
        self.monitor = monitor
        self.state_path = Path(state_path or self.path.with_suffix(".best.json"))
        self.enabled = enabled
        self.best = -math.inf
        self.kept = "best_epoch"  # what best.keras holds: "best_epoch" or an offered model's name
        self._best_epoch_value: float | None = None  # set when a model is offered
        if resume and self.state_path.is_file():  # a resumed run keeps the best it already had
            self.best = json.loads(self.state_path.read_text())["best"]

    @property
    def best_epoch_value(self) -> float | None:
        """The best epoch's figure (before any weight average was offered)."""
        value = self.best if self._best_epoch_value is None else self._best_epoch_value
        return value if math.isfinite(value) else None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or value <= self.best:
            return
        self._save(float(value), {"epoch": epoch + 1})

    def offer(self, value: float, name: str) -> bool:
        """After training: keep the model's current weights if `value` is at least the best."""
        self._best_epoch_value = self.best
        if value < self.best:
            return False
        self.kept = name
        self._save(value, {"epoch": None, "weights": name})
        return True

    def _save(self, value: float, state: dict) -> None:
        self.best = value
        if not self.enabled:
            return
        atomic_save_model(self.model, self.path)
        atomic_write_json(self.state_path, {"best": self.best, **state, "monitor": self.monitor})


class HistoryWriter(keras.callbacks.Callback):
    """Keep history.csv and history.json current after every epoch, without gaps on resume."""

    def __init__(self, run: RunDir, enabled: bool = True, first_epoch: int = 0):
        super().__init__()
        self.json_path = run.history_json
        self.csv_path = run.history_csv
        self.enabled = enabled
        self.first_epoch = first_epoch
        self.rows: list[dict] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        # Keep the rows of the epochs a resumed run does not repeat; a fresh run keeps none.
        if self.first_epoch and self.json_path.is_file():
            rows = json.loads(self.json_path.read_text())
            self.rows = [row for row in rows if row["epoch"] <= self.first_epoch]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        # Rows from epochs at or after this one belong to an interrupted attempt: replace them.
        self.rows = [row for row in self.rows if row["epoch"] < epoch + 1]
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in sorted((logs or {}).items())})
        self.rows.append(row)
        if self.enabled:
            self._write()

    def _write(self) -> None:
        atomic_write_json(self.json_path, self.rows)
        fields: list[str] = []
        for row in self.rows:
            fields.extend(k for k in row if k not in fields)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.csv_path, buffer.getvalue())


class EpochSeeds(keras.callbacks.Callback):
    """Set the model's random state (dropout) from the epoch number when each epoch begins.

    Keras does not save SeedGenerator states with the weights, so without this a resumed run
    would draw different dropout masks than an uninterrupted one.
    """

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.states = [v for v in self.model.variables if v.name == "seed_generator_state"]
        self.bases = [int(v.numpy()[0]) for v in self.states]

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        for base, state in zip(self.bases, self.states):
            state.assign([base, epoch << 32])


class AtomicBackupAndRestore(keras.callbacks.Callback):
    """Back up every epoch so that a killed run resumes where it stopped (public hooks only).

    Keras' `BackupAndRestore` rewrites its one backup file in place, so a kill during the write
    leaves nothing loadable. Here each epoch's weights (and optimizer state) go to a temp file
    renamed to `epoch-NNNN.weights.h5`, then `state.json` is replaced atomically to point at
    it; the previous epoch's file is kept until the next one is complete, which also lets the
    workers of a multi-worker job agree on an epoch they all have (`saved_epochs`). The run
    passes the resumed epoch to `fit(initial_epoch=...)`; a finished run deletes the backup.
    """

    STATE_FILE = "state.json"

    def __init__(self, backup_dir: Path, resume_epoch: int = 0):
        super().__init__()
        self.dir = Path(backup_dir)
        self.resume_epoch = resume_epoch

    @classmethod
    def saved_epochs(cls, backup_dir: Path) -> list[int]:
        """Epochs with a complete backup in `backup_dir`, oldest first."""
        state = Path(backup_dir) / cls.STATE_FILE
        if not state.is_file():
            return []
        epochs = json.loads(state.read_text()).get("epochs", [])
        return [e for e in epochs if (Path(backup_dir) / cls.weights_name(e)).is_file()]

    @staticmethod
    def weights_name(epoch: int) -> str:
        return f"epoch-{epoch:04d}.weights.h5"

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self.resume_epoch:
            return
        path = self.dir / self.weights_name(self.resume_epoch)
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        try:
            self.model.load_weights(str(path))
        except (OSError, ValueError) as err:
            raise ModelDirError(
                f"cannot restore the backup {path} ({err}); it does not fit this model. "
                f"Delete {self.dir} to start the run from scratch."
            ) from err

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        finished = epoch + 1
        atomic_save_weights(self.model, self.dir / self.weights_name(finished))
        keep = sorted({*self.saved_epochs(self.dir)[-1:], finished})
        atomic_write_json(self.dir / self.STATE_FILE, {"epochs": keep})
        for old in self.dir.glob("epoch-*.weights.h5"):
            if old.name not in {self.weights_name(e) for e in keep}:
                old.unlink(missing_ok=True)

    def on_train_end(self, logs: dict | None = None) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)  # the run finished: nothing to resume


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop training with `NonFiniteError` once an epoch's loss is NaN or infinite.

    Checked per epoch (a NaN batch makes the epoch's mean loss NaN), so no batch pays for a
    host sync; put it first so the diverged epoch is neither checkpointed nor backed up.
    """

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for key in ("loss", "val_loss"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(value)):
                raise NonFiniteError(
                    f"training diverged: {key} is {float(value)} after epoch {epoch + 1}; "
                    "lower train.learning_rate or check the data"
                )
