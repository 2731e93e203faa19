"""tf.data pipeline: class discovery, mismatches, odd formats, corrupt files, augmentation."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emotion_tf.config import load_config
from emotion_tf.data.files import drop_bad, load_splits, scan_images
from emotion_tf.data.pipeline import build_dataset, validation_passes
from emotion_tf.errors import DataError


def _save(path: Path, mode: str, size: tuple[int, int], value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    array = np.full((size[1], size[0], channels), value, np.uint8).squeeze()
    Image.fromarray(array, mode=None).convert(mode).save(path)


@pytest.fixture
def odd_data(tmp_path: Path) -> Path:
    """Each class in gray, RGB and RGBA; jpg, png, bmp and gif; odd sizes; one corrupt file."""
    root = tmp_path / "data"
    specs = [
        ("L", "a.jpg"),
        ("RGB", "b.png"),
        ("RGBA", "c.png"),
        ("RGB", "d.bmp"),
        ("L", "e.gif"),
        ("RGB", "f.jpeg"),
    ]
    for split in ("train", "validation"):
        for value, name in ((40, "happy"), (200, "sad")):
            for i, (mode, fname) in enumerate(specs):
                _save(root / split / name / fname, mode, (30 + 7 * i, 21 + 5 * i), value)
    (root / "train" / "sad" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (root / "train" / "sad" / "notes.txt").write_text("not an image")
    return root


def test_classes_are_sorted_folder_names(odd_data):
    splits = load_splits(odd_data)
    assert splits["train"].class_names == ["happy", "sad"]
    assert splits["train"].counts() == {"happy": 6, "sad": 7}
    assert splits["train"].ignored[0].endswith("notes.txt")


def test_mismatched_classes_are_named(odd_data):
    (odd_data / "validation" / "sad").rename(odd_data / "validation" / "angry")
    with pytest.raises(
        DataError, match=r"only in train: \['sad'\].*only in validation: \['angry'\]"
    ):
        load_splits(odd_data)


def test_missing_and_empty_folders(tmp_path, odd_data):
    with pytest.raises(DataError, match="not found"):
        load_splits(tmp_path / "nowhere")
    for item in (odd_data / "validation" / "happy").iterdir():
        item.unlink()
    with pytest.raises(DataError, match="no images.*validation/happy"):
        load_splits(odd_data)


def test_corrupt_files_are_found_and_named(odd_data):
    files = load_splits(odd_data)["train"]
    bad = scan_images(files.paths, max_pixels=10_000_000)
    assert [Path(b.path).name for b in bad] == ["broken.jpg"]
    kept = drop_bad(files, bad)
    assert kept.counts() == {"happy": 6, "sad": 6}


def test_every_format_decodes_to_model_shape(odd_data):
    files = load_splits(odd_data)["validation"]
    for channels in (1, 3):
        config = load_config(
            None, [f"model.channels={channels}", "model.input_size=24", "data.batch_size=5"]
        )
        batches = list(build_dataset(files, config, training=False))
        images = np.concatenate([b[0].numpy() for b in batches])
        labels = np.concatenate([b[1].numpy() for b in batches])
        assert images.shape == (12, 24, 24, channels)
        assert labels.shape == (12, 2)
        # Uniform images keep their value through decode and resize, whatever the format.
        happy = images[labels[:, 0] == 1]
        assert np.abs(happy - 40).max() <= 2


def test_augmentation_only_in_training(odd_data):
    files = load_splits(odd_data)["validation"]
    base = ["model.input_size=24", "data.batch_size=12", "data.cache=false"]
    off = [
        f"data.augment.{k}={v}"
        for k, v in (
            ("flip", "false"),
            ("rotation", 0),
            ("zoom", 0),
            ("translation", 0),
            ("brightness", 0),
            ("contrast", 0),
        )
    ]
    augmented_config = load_config(None, [*base, "data.augment.brightness=0.5"])
    plain = next(iter(build_dataset(files, augmented_config, training=False)))[0].numpy()
    again = next(iter(build_dataset(files, augmented_config, training=False)))[0].numpy()
    np.testing.assert_array_equal(plain, again)  # evaluation is deterministic and unaugmented
    # Same seed, so the same shuffle order: only the augmentation differs.
    no_aug = next(iter(build_dataset(files, load_config(None, base + off), training=True)))[0]
    aug = next(iter(build_dataset(files, augmented_config, training=True)))[0]
    assert np.array_equal(np.sort(no_aug.numpy().ravel()), np.sort(plain.ravel()))
    assert np.abs(aug.numpy() - no_aug.numpy()).mean() > 5.0


def test_training_batches_drop_remainder_with_replicas(odd_data):
    files = load_splits(odd_data)["train"]
    files = drop_bad(files, scan_images(files.paths, 10_000_000))
    config = load_config(None, ["model.input_size=24", "data.batch_size=5"])
    sizes = [b[0].shape[0] for b in build_dataset(files, config, training=True, num_replicas=2)]
    assert sizes == [5, 5]


def test_validation_passes_do_not_autotune(odd_data):
    """Keras rebuilds the validation iterator every epoch; tearing down an autotuned one stalls."""
    files = load_splits(odd_data)["validation"]
    config = load_config(None, ["model.input_size=24", "data.batch_size=5"])
    dataset, steps = validation_passes(files, config)
    assert dataset.options().autotune.enabled is False
    assert steps == 3  # 12 images in batches of 5
    images = [x for x, _ in dataset.take(steps)]
    assert sum(int(x.shape[0]) for x in images) == 12
