"""Train under a 2-replica MirroredStrategy, export, reload, predict and evaluate via the CLI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from emotion_tf.cli import main
from emotion_tf.config import load_config
from emotion_tf.data.files import list_split
from emotion_tf.export import LoadedExport, resolve_export
from emotion_tf.train.trainer import train
from tests.conftest import tiny_overrides

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mirrored_run(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    run_dir = tmp_path_factory.mktemp("e2e") / "run"
    config = load_config(
        None,
        tiny_overrides(run_dir, tiny_data_dir, **{"train.strategy": "mirrored", "train.epochs": 2}),
    )
    return train(config)


def test_two_replica_run_writes_every_artefact(mirrored_run):
    run_dir = mirrored_run.run_dir
    info = json.loads((run_dir / "run_info.json").read_text())
    assert info["replicas"] == 2 and info["strategy"] == "MirroredStrategy"
    for name in ("config.yaml", "best.keras", "history.csv", "history.json", "metrics.json"):
        assert (run_dir / name).is_file(), name
    history = json.loads((run_dir / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history[0])
    assert any((run_dir / "logs").rglob("events.out.tfevents.*"))
    assert mirrored_run.export_path == run_dir / "export" / "1"
    assert load_config(run_dir / "config.yaml").train.strategy == "mirrored"


def test_export_matches_in_memory_model(mirrored_run, tiny_data_dir):
    import keras

    model = keras.models.load_model(mirrored_run.run_dir / "best.keras")
    exported = LoadedExport(mirrored_run.run_dir)
    files = list_split(tiny_data_dir / "validation")
    blobs = [Path(p).read_bytes() for p in files.paths[:6]]
    from_bytes = exported.predict_bytes(blobs)
    images = np.stack(
        [
            __import__("emotion_tf.preprocess", fromlist=["x"])
            .bytes_to_model_input(tf.constant(b), exported.input_size, exported.channels)
            .numpy()
            for b in blobs
        ]
    )
    expected = model(images.astype("float32"), training=False).numpy()
    np.testing.assert_allclose(from_bytes["probabilities"], expected, atol=1e-5)
    from_images = exported.predict_images(images)
    np.testing.assert_allclose(from_images["probabilities"], expected, atol=1e-5)
    labels = [label.decode() for label in from_bytes["label"]]
    assert labels == [exported.class_names[i] for i in expected.argmax(axis=1)]


def test_export_is_lean(mirrored_run):
    import keras

    model = keras.models.load_model(mirrored_run.run_dir / "best.keras")
    weight_bytes = sum(np.prod(w.shape) * 4 for w in model.weights)
    variables = resolve_export(mirrored_run.run_dir) / "variables"
    on_disk = sum(f.stat().st_size for f in variables.iterdir())
    assert on_disk <= 1.1 * weight_bytes + 64 * 1024


def test_cli_predict_and_evaluate(mirrored_run, tiny_data_dir, tmp_path):
    runner = CliRunner()
    happy = tiny_data_dir / "validation" / "happy"
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result = runner.invoke(
        main,
        ["predict", "-m", str(mirrored_run.run_dir), str(happy), str(broken), "--format", "csv"],
    )
    assert result.exit_code == 1  # one input failed, the others were still predicted
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == len(list(happy.iterdir())) + 1
    good = [r for r in rows if not r["error"]]
    assert len(good) == len(rows) - 1
    assert all(r["label"] in ("happy", "sad") for r in good)
    assert all(abs(float(r["happy"]) + float(r["sad"]) - 1) < 1e-4 for r in good)
    assert [Path(r["path"]).name for r in rows if r["error"]] == ["broken.png"]

    as_json = runner.invoke(
        main, ["predict", "-m", str(mirrored_run.export_path), str(happy), "--format", "json"]
    )
    assert as_json.exit_code == 0, as_json.output
    assert len(json.loads(as_json.stdout)) == len(good)

    out = tmp_path / "eval.json"
    result = runner.invoke(
        main,
        [
            "evaluate",
            "-m",
            str(mirrored_run.run_dir / "export"),
            str(tiny_data_dir),
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    assert metrics["count"] == len(list_split(tiny_data_dir / "validation").paths)
    assert "confusion matrix" in result.stdout and "balanced accuracy" in result.stdout
    assert np.sum(metrics["confusion_matrix"]) == metrics["count"]
    training = json.loads((mirrored_run.run_dir / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(training["accuracy"], abs=1e-6)


def test_cli_export_makes_next_version(mirrored_run):
    result = CliRunner().invoke(main, ["export", str(mirrored_run.run_dir)])
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()).name == "2"
    assert LoadedExport(mirrored_run.run_dir / "export").version == 2


def test_cli_errors_are_one_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["predict", "-m", str(tmp_path), "x.jpg"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "not an emotion-tf export" in result.stderr
    result = runner.invoke(main, ["train", "--set", "train.epochz=1"])
    assert result.exit_code == 2 and "train.epochz" in result.stderr
    result = runner.invoke(main, ["train", "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 2 and "data dir not found" in result.stderr
