"""`emotion-tf data to-tfrecord`: sharded TFRecords that train exactly like the folders."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from emotion_tf.cli import main
from emotion_tf.config import load_config
from emotion_tf.data import tfrecord
from emotion_tf.data.files import load_splits, scan_split
from emotion_tf.data.pipeline import build_dataset, encoded_examples
from emotion_tf.data.tfrecord import MANIFEST, load_record_splits, write_tfrecords
from emotion_tf.errors import DataError
from tests.badfiles import exif_rotated_jpeg, face
from tests.conftest import tiny_overrides

NO_AUGMENT = [
    "data.augment.flip=false",
    *[f"data.augment.{k}=0" for k in ("rotation", "zoom", "translation", "brightness", "contrast")],
]


@pytest.fixture(scope="module")
def folder_data(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny set plus a text file named .jpg and a sideways (EXIF 6) photo in train/sad."""
    root = tmp_path_factory.mktemp("tfr") / "data"
    shutil.copytree(tiny_data_dir, root)
    (root / "train" / "sad" / "notes.jpg").write_text("not an image")
    (root / "train" / "sad" / "sideways.jpg").write_bytes(exif_rotated_jpeg(face(5, (30, 40)), 6))
    return root


@pytest.fixture(scope="module")
def records(folder_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tfr_out") / "records"
    result = CliRunner().invoke(
        main, ["data", "to-tfrecord", str(folder_data), str(out), "--shards", "3"]
    )
    assert result.exit_code == 0, result.stderr[-2000:]
    assert "train: 33 examples in 3 shard(s)" in result.stdout
    assert "skipped 1 bad file(s)" in result.stdout
    return out


def test_manifest_counts_shards_and_skipped_files(records: Path, folder_data: Path) -> None:
    manifest = json.loads((records / MANIFEST).read_text())
    train = manifest["splits"]["train"]
    assert manifest["class_names"] == ["happy", "sad"]
    assert train["counts"] == {"happy": 16, "sad": 17} and train["num_examples"] == 33
    assert train["files"] == [f"train-0000{i}-of-00003.tfrecord" for i in range(3)]
    assert [Path(item["path"]).name for item in train["skipped_files"]] == ["notes.jpg"]
    assert "not an image" in train["skipped_files"][0]["reason"]
    assert train["exif_rotated"] == 1
    assert sorted(p.name for p in records.iterdir()) == sorted(
        [MANIFEST, *train["files"], *manifest["splits"]["validation"]["files"]]
    )


def test_records_come_back_in_the_pipeline_order(records: Path, folder_data: Path) -> None:
    """Training records in the seeded order the folder pipeline uses; validation as listed."""
    splits = load_splits(folder_data)
    for split, seed in (("train", 1337), ("validation", None)):
        folder_split, _ = scan_split(splits[split], 10**8)
        record_split = load_record_splits(records)[split]
        assert record_split.order_seed == seed
        expected = [(d.numpy(), int(y), int(o)) for d, y, o in encoded_examples(folder_split, seed)]
        got = [(d.numpy(), int(y), int(o)) for d, y, o in encoded_examples(record_split, seed)]
        assert got == expected  # same bytes, labels and orientations, same order
    labels = [y for _, y, _ in got]
    raw = next(iter(tf.data.TFRecordDataset(record_split.files[0])))
    example = tf.train.Example.FromString(raw.numpy())
    assert set(example.features.feature) == {"image", "label", "path", "orientation"}
    path = example.features.feature["path"].bytes_list.value[0]
    assert os.fsdecode(path) == folder_split.paths[0]
    assert labels == sorted(labels)  # validation keeps the class-sorted folder order


def test_pipeline_batches_match_folders(records: Path, folder_data: Path) -> None:
    config = load_config(None, ["model.input_size=32", "data.batch_size=5", *NO_AUGMENT])
    for split, training in (("validation", False), ("train", True)):
        folder_split, _ = scan_split(load_splits(folder_data)[split], 10**8)
        record_split = load_record_splits(records)[split]
        a = list(build_dataset(folder_split, config, training, epoch=1))
        b = list(build_dataset(record_split, config, training, epoch=1))
        assert len(a) == len(b) == -(-len(folder_split.paths) // 5)
        for (images_a, labels_a), (images_b, labels_b) in zip(a, b):
            np.testing.assert_array_equal(images_a.numpy(), images_b.numpy())
            np.testing.assert_array_equal(labels_a.numpy(), labels_b.numpy())


@pytest.mark.slow
def test_training_on_records_matches_training_on_folders(
    records: Path, folder_data: Path, tmp_path: Path
) -> None:
    from emotion_tf.train.trainer import train

    results = {}
    for name, data_dir in (("folders", folder_data), ("records", records)):
        overrides = tiny_overrides(
            tmp_path / name,
            data_dir,
            **{"train.epochs": 2, "train.strategy": "default", "model.dropout": 0.0},
        )
        results[name] = train(load_config(None, [*overrides, *NO_AUGMENT]), export=False)
    histories = {
        name: json.loads((result.run_dir / "history.json").read_text())
        for name, result in results.items()
    }
    assert abs(histories["folders"][-1]["loss"] - histories["folders"][0]["loss"]) > 1e-3
    for a, b in zip(histories["folders"], histories["records"]):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), (a["epoch"], key)
    infos = {
        name: json.loads((result.run_dir / "run_info.json").read_text())
        for name, result in results.items()
    }
    assert infos["records"]["data_format"] == "tfrecord"
    assert infos["records"]["file_list_hash"] == infos["folders"]["file_list_hash"]
    assert infos["records"]["counts"] == infos["folders"]["counts"]
    assert len(infos["records"]["skipped_files"]) == len(infos["folders"]["skipped_files"]) == 1
    import keras

    images = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    models = [keras.models.load_model(r.run_dir / "best.keras") for r in results.values()]
    np.testing.assert_allclose(models[0](images), models[1](images), atol=1e-5)


def test_conversion_mistakes_get_one_clear_error(folder_data: Path, records: Path, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["data", "to-tfrecord", str(folder_data), str(records)])
    assert result.exit_code == 2 and "output folder is not empty" in result.stderr
    result = runner.invoke(
        main, ["data", "to-tfrecord", str(folder_data), str(tmp_path / "o"), "--shards", "0"]
    )
    assert result.exit_code == 2 and "--shards must be at least 1" in result.stderr
    result = runner.invoke(main, ["data", "to-tfrecord", str(tmp_path / "none"), str(tmp_path)])
    assert result.exit_code == 2 and "data dir not found" in result.stderr
    broken = tmp_path / "broken"
    shutil.copytree(records, broken)
    next(broken.glob("validation-*.tfrecord")).unlink()
    with pytest.raises(DataError, match="TFRecord shard missing"):
        load_record_splits(broken)


def test_interrupted_conversion_leaves_no_output(folder_data: Path, tmp_path: Path, monkeypatch):
    calls = []

    def failing_example(*args):
        calls.append(1)
        if len(calls) > 10:
            raise KeyboardInterrupt  # stands in for Ctrl-C halfway through
        return real_example(*args)

    real_example = tfrecord._example
    monkeypatch.setattr(tfrecord, "_example", failing_example)
    with pytest.raises(KeyboardInterrupt):
        write_tfrecords(folder_data, tmp_path / "out", shards=2)
    assert sorted(os.listdir(tmp_path)) == []  # neither OUT nor its temp folder
