"""Callbacks that write run artefacts atomically and survive a resumed run."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path

import keras

from emotion_tf.io_utils import atomic_write_json, atomic_write_text


class BestCheckpoint(keras.callbacks.Callback):
    """Save the model as `.keras` when `monitor` improves; write to a temp file, then rename."""

    def __init__(
        self,
        path: Path,
        monitor: str = "val_accuracy",
        state_path: Path | None = None,
        enabled: bool = True,
    ):
        super().__init__()
        self.path = Path(path)
        self.monitor = monitor
        self.state_path = Path(state_path or self.path.with_suffix(".best.json"))
        self.enabled = enabled
        self.best = -math.inf
        if self.state_path.is_file():  # a resumed run keeps the best it already had
            self.best = json.loads(self.state_path.read_text())["best"]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or value <= self.best:
            return
        self.best = float(value)
        if not self.enabled:
            return
        fd, tmp = tempfile.mkstemp(prefix=".best.", suffix=".keras", dir=self.path.parent)
        os.close(fd)
        try:
            self.model.save(tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        atomic_write_json(
            self.state_path, {"best": self.best, "epoch": epoch + 1, "monitor": self.monitor}
        )


class HistoryWriter(keras.callbacks.Callback):
    """Keep history.csv and history.json current after every epoch, without gaps on resume."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        super().__init__()
        self.json_path = Path(run_dir) / "history.json"
        self.csv_path = Path(run_dir) / "history.csv"
        self.enabled = enabled
        self.rows: list[dict] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.json_path.is_file():
            self.rows = json.loads(self.json_path.read_text())

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
