"""Faults: SIGKILL in the middle of an epoch and of an export; atomic backups; audit trail."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from emotion_tf import __version__
from emotion_tf.data.files import file_list_hash, load_splits
from emotion_tf.errors import ModelDirError
from emotion_tf.export import LoadedExport, resolve_export
from tests.conftest import tiny_overrides

EPOCHS = 3
STEPS = 4  # 32 training images, batch 8
TIMEOUT = 600

# Runs the real CLI entry point. Each training batch is logged to $PROGRESS_FILE and slowed
# down, so the test can kill the run at a known point in the middle of an epoch.
SLOW_CLI = textwrap.dedent(
    """
    import os, sys, time
    from emotion_tf.train import callbacks

    def on_train_batch_end(self, batch, logs=None):
        with open(os.environ["PROGRESS_FILE"], "a") as progress:
            progress.write(f"{batch}\\n")
        time.sleep(float(os.environ.get("BATCH_DELAY", "0")))

    callbacks.HistoryWriter.on_train_batch_end = on_train_batch_end
    from emotion_tf.cli import main
    main(prog_name="emotion-tf")
    """
)

# `emotion-tf export`, stopped for good right after the SavedModel is written to its temp dir.
STALLED_EXPORT = textwrap.dedent(
    """
    import sys, time
    import tensorflow as tf

    real_save = tf.saved_model.save

    def stalled_save(*args, **kwargs):
        real_save(*args, **kwargs)
        print("SAVED", flush=True)
        time.sleep(600)

    tf.saved_model.save = stalled_save
    from emotion_tf.cli import main
    main(prog_name="emotion-tf")
    """
)


def start(script: str, args: list[str], workdir: Path, **env: str) -> subprocess.Popen:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "cli_hook.py"
    path.write_text(script)
    return subprocess.Popen(
        [sys.executable, str(path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env},
    )


def finish(process: subprocess.Popen) -> tuple[str, str]:
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"command timed out: {err.decode(errors='replace')[-3000:]}")
    assert process.returncode == 0, err.decode(errors="replace")[-3000:]
    return out.decode(errors="replace"), err.decode(errors="replace")


def train_args(data_dir: Path, run_dir: Path) -> list[str]:
    overrides = tiny_overrides(
        run_dir,
        data_dir,
        **{
            "train.epochs": EPOCHS,
            "train.deterministic": "true",
            "train.strategy": "default",
            "train.learning_rate": 0.003,
        },
    )
    return ["train", *[x for item in overrides for x in ("--set", item)]]


def history(run_dir: Path) -> list[dict]:
    path = run_dir / "history.json"
    return json.loads(path.read_text()) if path.is_file() else []


@pytest.fixture(scope="module")
def runs(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same training twice: once SIGKILLed mid-epoch 2 and restarted, once straight."""
    root = tmp_path_factory.mktemp("faults")
    killed_dir, straight_dir = root / "killed", root / "straight"
    progress = root / "progress.txt"
    straight = start(
        SLOW_CLI,
        train_args(tiny_data_dir, straight_dir),
        root / "s",
        PROGRESS_FILE=str(root / "straight-progress.txt"),
    )
    killed = start(
        SLOW_CLI,
        train_args(tiny_data_dir, killed_dir),
        root / "k",
        PROGRESS_FILE=str(progress),
        BATCH_DELAY="0.4",
    )
    deadline = time.monotonic() + TIMEOUT
    try:
        # Kill once epoch 1 is recorded and epoch 2 has run two of its four batches.
        while not (
            len(history(killed_dir)) == 1
            and progress.is_file()
            and len(progress.read_text().split()) >= STEPS + 2
        ):
            assert killed.poll() is None, killed.communicate()[1].decode()[-3000:]
            assert time.monotonic() < deadline, "training did not reach epoch 2"
            time.sleep(0.05)
        os.kill(killed.pid, signal.SIGKILL)
        killed.communicate(timeout=60)
    finally:
        if killed.poll() is None:
            killed.kill()
    at_kill = {
        "history": history(killed_dir),
        "batches": len(progress.read_text().split()),
        "returncode": killed.returncode,
        "backup": json.loads((killed_dir / "backup" / "state.json").read_text()),
    }
    restarted = start(
        SLOW_CLI, train_args(tiny_data_dir, killed_dir), root / "k", PROGRESS_FILE=str(progress)
    )
    _, resume_log = finish(restarted)
    finish(straight)
    return {
        "killed": killed_dir,
        "straight": straight_dir,
        "at_kill": at_kill,
        "resume_log": resume_log,
        "data": tiny_data_dir,
    }


@pytest.mark.slow
def test_sigkill_mid_epoch_resumes_from_the_last_finished_epoch(runs) -> None:
    at_kill = runs["at_kill"]
    assert at_kill["returncode"] == -signal.SIGKILL
    assert [row["epoch"] for row in at_kill["history"]] == [1]
    assert STEPS < at_kill["batches"] < 2 * STEPS  # killed in the middle of epoch 2
    assert at_kill["backup"]["epochs"] == [1]
    assert "resuming after epoch 1" in runs["resume_log"]
    info = json.loads((runs["killed"] / "run_info.json").read_text())
    assert info["resumed_after_epoch"] == 1
    assert not (runs["killed"] / "backup").exists()  # removed once training finished


@pytest.mark.slow
def test_resumed_history_has_no_gap_or_duplicate_and_matches(runs) -> None:
    resumed, straight = history(runs["killed"]), history(runs["straight"])
    assert [row["epoch"] for row in resumed] == list(range(1, EPOCHS + 1))
    assert [row["epoch"] for row in straight] == list(range(1, EPOCHS + 1))
    assert abs(straight[-1]["loss"] - straight[0]["loss"]) > 1e-3  # the model did train
    for a, b in zip(resumed, straight):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), (a["epoch"], key)
    csv_lines = (runs["killed"] / "history.csv").read_text().splitlines()
    assert len(csv_lines) == EPOCHS + 1


@pytest.mark.slow
def test_resumed_final_metrics_and_model_match_an_uninterrupted_run(runs) -> None:
    metrics = [json.loads((runs[k] / "metrics.json").read_text()) for k in ("killed", "straight")]
    for key in ("accuracy", "balanced_accuracy", "roc_auc", "best_epoch_val_accuracy"):
        assert metrics[0][key] == pytest.approx(metrics[1][key], abs=1e-6), key
    assert metrics[0]["confusion_matrix"] == metrics[1]["confusion_matrix"]
    images = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    outputs = [
        LoadedExport(runs[k]).predict_images(images)["probabilities"]
        for k in ("killed", "straight")
    ]
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-5)


@pytest.mark.slow
def test_run_dir_records_what_is_needed_to_audit_a_run(runs) -> None:
    import keras
    import tensorflow as tf

    info = json.loads((runs["straight"] / "run_info.json").read_text())
    assert info["package_version"] == __version__
    assert info["tensorflow_version"] == tf.__version__
    assert info["keras_version"] == keras.__version__
    assert info["counts"] == {
        "train": {"happy": 16, "sad": 16},
        "validation": {"happy": 8, "sad": 8},
    }
    assert info["file_list_hash"] == file_list_hash(load_splits(runs["data"]), runs["data"])
    assert info["config_hash"] and info["data_format"] == "folders"
    other = json.loads((runs["killed"] / "run_info.json").read_text())
    assert other["file_list_hash"] == info["file_list_hash"]
    assert other["config_hash"] != info["config_hash"]  # the config names its own run dir


@pytest.mark.slow
def test_sigkill_during_export_leaves_nothing_servable(runs, tmp_path: Path) -> None:
    base = tmp_path / "export"
    process = start(
        STALLED_EXPORT, ["export", str(runs["straight"]), "--export-dir", str(base)], tmp_path
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], TIMEOUT)
        assert ready, "export did not reach the save in time"
        line = process.stdout.readline().decode()
        assert line.strip() == "SAVED", process.communicate(timeout=60)[1].decode()[-3000:]
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    entries = sorted(p.name for p in base.iterdir())
    assert entries and all(name.startswith(".tmp-") for name in entries), entries
    # TF Serving loads only folders named by integers: nothing half-written is visible.
    assert not [name for name in entries if name.isdigit()]
    with pytest.raises(ModelDirError, match="not an emotion-tf export"):
        resolve_export(base)
    from click.testing import CliRunner

    from emotion_tf.cli import main

    result = CliRunner().invoke(main, ["export", str(runs["straight"]), "--export-dir", str(base)])
    assert result.exit_code == 0, result.stderr[-2000:]
    assert LoadedExport(base).version == 1


def test_backup_survives_a_crash_while_saving(tmp_path: Path, monkeypatch) -> None:
    """Killed while writing epoch 2's backup: epoch 1's is still complete and loadable."""
    import keras

    from emotion_tf import io_utils
    from emotion_tf.train import callbacks as callbacks_module
    from emotion_tf.train.callbacks import AtomicBackupAndRestore

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("adam", "mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    backup = AtomicBackupAndRestore(tmp_path / "backup")
    backup.set_model(model)
    backup.on_epoch_end(0)
    saved = [w.copy() for w in model.get_weights()]
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), verbose=0)

    def half_write(path: str, **kwargs) -> None:
        Path(path).write_bytes(b"half an HDF5 file")
        raise KeyboardInterrupt  # stands in for the process dying here

    monkeypatch.setattr(model, "save_weights", half_write)
    with pytest.raises(KeyboardInterrupt):
        backup.on_epoch_end(1)
    monkeypatch.undo()
    # Crash after the weights file but before the state that points at it.
    monkeypatch.setattr(callbacks_module, "atomic_write_json", _raise_interrupt)
    with pytest.raises(KeyboardInterrupt):
        backup.on_epoch_end(1)
    monkeypatch.setattr(callbacks_module, "atomic_write_json", io_utils.atomic_write_json)

    assert AtomicBackupAndRestore.saved_epochs(tmp_path / "backup") == [1]
    assert not list((tmp_path / "backup").glob(".tmp-*"))
    fresh = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    fresh.compile("adam", "mse")
    restore = AtomicBackupAndRestore(tmp_path / "backup", resume_epoch=1)
    restore.set_model(fresh)
    restore.on_train_begin()
    for got, want in zip(fresh.get_weights(), saved):
        np.testing.assert_array_equal(got, want)


def _raise_interrupt(*args, **kwargs) -> None:
    raise KeyboardInterrupt


def test_backup_keeps_the_two_newest_epochs(tmp_path: Path) -> None:
    import keras

    from emotion_tf.train.callbacks import AtomicBackupAndRestore

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("adam", "mse")
    backup = AtomicBackupAndRestore(tmp_path)
    backup.set_model(model)
    for epoch in range(4):
        backup.on_epoch_end(epoch)
    assert AtomicBackupAndRestore.saved_epochs(tmp_path) == [3, 4]
    assert sorted(p.name for p in tmp_path.glob("*.h5")) == [
        "epoch-0003.weights.h5",
        "epoch-0004.weights.h5",
    ]
