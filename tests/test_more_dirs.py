"""data.more_dirs (further data folders' splits added to data_dir's) and data.oversample."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from emotion_tf.config import load_config
from emotion_tf.data.balance import oversample
from emotion_tf.data.demo import generate_demo_dataset
from emotion_tf.data.files import LabelledFiles
from emotion_tf.errors import ConfigError, DataError
from emotion_tf.train.trainer import load_training_data
from tests.conftest import tiny_overrides


@pytest.fixture(scope="module")
def second_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("more") / "data"
    generate_demo_dataset(root, per_class=6, seed=3)
    return root


def test_more_dirs_add_their_train_and_validation(
    tiny_data_dir: Path, second_dir: Path, tmp_path: Path
) -> None:
    alone = load_training_data(load_config(None, tiny_overrides(tmp_path / "a", tiny_data_dir)))
    config = load_config(
        None, tiny_overrides(tmp_path / "b", tiny_data_dir, **{"data.more_dirs": f"[{second_dir}]"})
    )
    assert config.data.more_dirs == [str(second_dir)]
    both = load_training_data(config)
    for split in ("train", "validation"):
        paths = both.splits[split].paths
        assert paths[: len(alone.splits[split].paths)] == alone.splits[split].paths
        extra = [p for p in paths if p.startswith(str(second_dir))]
        assert extra and len(paths) == len(alone.splits[split].paths) + len(extra)
    assert both.file_list_hash != alone.file_list_hash


def test_more_dirs_must_have_the_same_classes(
    tiny_data_dir: Path, second_dir: Path, tmp_path: Path
) -> None:
    odd = tmp_path / "odd"
    shutil.copytree(second_dir, odd)
    for split in ("train", "validation"):
        (odd / split / "sad").rename(odd / split / "angry")
    config = load_config(
        None, tiny_overrides(tmp_path / "r", tiny_data_dir, **{"data.more_dirs": f"[{odd}]"})
    )
    with pytest.raises(DataError, match="odd/train.*differ"):
        load_training_data(config)
    with pytest.raises(ConfigError, match="data.more_dirs: expected a list"):
        load_config(None, tiny_overrides(tmp_path / "s", tiny_data_dir, **{"data.more_dirs": 3}))


def test_oversample_evens_the_classes_out() -> None:
    files = LabelledFiles(
        ["happy", "sad"], [f"s{i}" for i in range(7)] + ["h0", "h1"], [1] * 7 + [0, 0]
    )
    even = oversample(files, seed=1)
    assert even.counts() == {"happy": 7, "sad": 7}
    assert even.paths[:9] == files.paths  # every original kept, in order
    happy = [p for p, label in zip(even.paths, even.labels) if label == 0]
    assert sorted(set(happy)) == ["h0", "h1"] and abs(happy.count("h0") - happy.count("h1")) <= 1
    assert oversample(files, seed=1).paths == even.paths  # seeded
    assert oversample(LabelledFiles(["happy", "sad"], [], []), seed=1).paths == []


def test_oversample_applies_to_the_training_split_only(tiny_data_dir: Path, tmp_path: Path) -> None:
    lopsided = tmp_path / "lopsided"
    shutil.copytree(tiny_data_dir, lopsided)
    for path in sorted((lopsided / "train" / "happy").iterdir())[5:]:
        path.unlink()
    config = load_config(
        None, tiny_overrides(tmp_path / "o", lopsided, **{"data.oversample": "true"})
    )
    data = load_training_data(config)
    counts = data.splits["train"].counts()
    assert counts["happy"] == counts["sad"] > 5
    plain = load_training_data(load_config(None, tiny_overrides(tmp_path / "p", lopsided)))
    assert data.splits["validation"].paths == plain.splits["validation"].paths
