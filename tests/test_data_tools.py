"""`emotion-tf data prepare-fer2013 | split | check` on small CSVs and folders made here."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from emotion_tf.cli import main
from emotion_tf.data.tools.check import check_dataset, format_report
from emotion_tf.data.tools.fer2013 import prepare_fer2013
from emotion_tf.data.tools.split import split_dataset
from emotion_tf.errors import DataError


def _pixels(seed: int, side: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (side, side), dtype=np.uint8)


def _row(emotion: int | str, usage: str, pixels: np.ndarray | str) -> str:
    text = pixels if isinstance(pixels, str) else " ".join(str(v) for v in pixels.ravel())
    return f'{emotion},"{text}",{usage}'


def _write_image(path: Path, seed: int, fmt: str = "PNG", size: int = 16, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(array).convert(mode).save(path, fmt)
    return path


# --- prepare-fer2013 ---------------------------------------------------------------------------


@pytest.fixture
def fer_csv(tmp_path: Path) -> Path:
    """Rows 1-5 are usable (happy/sad/angry), rows 6-8 are broken in three ways."""
    rows = [
        "emotion,pixels,Usage",
        _row(3, "Training", _pixels(1)),  # 1 happy -> train
        _row(4, "Training", _pixels(2)),  # 2 sad -> train
        _row(0, "Training", _pixels(3)),  # 3 angry: not asked for
        _row(3, "PublicTest", _pixels(4)),  # 4 happy -> validation
        _row(4, "PrivateTest", _pixels(5)),  # 5 sad -> test
        _row(3, "Training", "1 2 3"),  # 6 not a square
        _row(9, "Training", _pixels(6)),  # 7 no such emotion
        _row(4, "Holdout", _pixels(7)),  # 8 unknown usage
    ]
    path = tmp_path / "fer2013.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_prepare_fer2013_writes_split_class_folders(
    fer_csv: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "fer"
    with caplog.at_level(logging.WARNING):
        result = prepare_fer2013(fer_csv, out)
    assert result.counts == {
        "train": {"happy": 1, "sad": 1},
        "validation": {"happy": 1, "sad": 0},
        "test": {"happy": 0, "sad": 1},
    }
    assert result.other_classes == 1
    assert [reason.split(": ")[0] for reason in result.skipped] == [
        f"{fer_csv} row 6",
        f"{fer_csv} row 7",
        f"{fer_csv} row 8",
    ]
    assert "row 8" in caplog.text and "Holdout" in caplog.text
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == [
        "test/sad/fer2013-00005.png",
        "train/happy/fer2013-00001.png",
        "train/sad/fer2013-00002.png",
        "validation/happy/fer2013-00004.png",
    ]
    assert (out / "validation" / "sad").is_dir()  # every split lists every class
    with Image.open(out / "train" / "sad" / "fer2013-00002.png") as image:
        assert image.mode == "L"
        np.testing.assert_array_equal(np.asarray(image), _pixels(2))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".fer.")]


def test_prepare_fer2013_classes_by_number_and_jpeg(fer_csv: Path, tmp_path: Path) -> None:
    result = prepare_fer2013(fer_csv, tmp_path / "out", classes=["0", "happy"], image_format="jpg")
    assert result.counts["train"] == {"angry": 1, "happy": 1}
    files = sorted((tmp_path / "out").rglob("*.jpg"))
    assert len(files) == 3
    with Image.open(files[0]) as image:
        assert image.format == "JPEG"


def test_prepare_fer2013_refuses_nonempty_output_and_keeps_it(
    fer_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    (out / "mine").mkdir(parents=True)
    with pytest.raises(DataError, match="not empty"):
        prepare_fer2013(fer_csv, out)
    assert (out / "mine").is_dir()
    prepare_fer2013(fer_csv, out, overwrite=True)
    assert not (out / "mine").exists() and (out / "train" / "happy").is_dir()


def test_prepare_fer2013_leaves_nothing_when_it_fails(tmp_path: Path) -> None:
    csv_path = tmp_path / "other.csv"
    csv_path.write_text("label,image\n3,1 2 3 4\n")
    with pytest.raises(DataError, match="no 'emotion' or 'pixels' column"):
        prepare_fer2013(csv_path, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.csv"]


def test_prepare_fer2013_cli(fer_csv: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(
        main, ["data", "prepare-fer2013", str(fer_csv), str(tmp_path / "o"), "--format", "json"]
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["counts"]["train"] == {"happy": 1, "sad": 1}
    bad = runner.invoke(
        main, ["data", "prepare-fer2013", str(fer_csv), str(tmp_path / "p"), "--classes", "joy"]
    )
    assert bad.exit_code == 2
    assert "unknown FER2013 class 'joy'" in bad.stderr


# --- split -------------------------------------------------------------------------------------


@pytest.fixture
def class_folders(tmp_path: Path) -> Path:
    """happy: 30 images (two byte-identical), sad: 12 images, one in a sub-folder."""
    src = tmp_path / "src"
    for i in range(29):
        _write_image(src / "happy" / f"h{i:02d}.png", seed=i)
    shutil.copy(src / "happy" / "h00.png", src / "happy" / "h00-copy.png")
    for i in range(11):
        _write_image(src / "sad" / f"s{i:02d}.png", seed=100 + i)
    _write_image(src / "sad" / "more" / "s11.png", seed=111)
    return src


def _listing(root: Path) -> dict[str, list[str]]:
    return {
        split: sorted(p.relative_to(root / split).as_posix() for p in (root / split).rglob("*.png"))
        for split in ("train", "validation", "test")
        if (root / split).is_dir()
    }


def test_split_is_stratified_and_deterministic(class_folders: Path, tmp_path: Path) -> None:
    result = split_dataset(class_folders, tmp_path / "a", validation=0.33, seed=5)
    assert result.counts == {
        "train": {"happy": 20, "sad": 8},
        "validation": {"happy": 10, "sad": 4},
    }
    again = split_dataset(class_folders, tmp_path / "b", validation=0.33, seed=5)
    other = split_dataset(class_folders, tmp_path / "c", validation=0.33, seed=6)
    assert other.counts == result.counts  # same sizes, other files
    assert again.counts == result.counts
    assert _listing(tmp_path / "a") == _listing(tmp_path / "b")
    assert _listing(tmp_path / "a") != _listing(tmp_path / "c")
    # sub-folders inside a class are kept; files are real copies
    names = _listing(tmp_path / "a")
    assert "sad/more/s11.png" in names["train"] + names["validation"]
    assert not any(p.is_symlink() for p in (tmp_path / "a").rglob("*.png"))
    manifest = json.loads((tmp_path / "a" / "split.json").read_text())
    assert manifest["seed"] == 5 and manifest["counts"] == result.counts


def test_split_keeps_identical_files_together(class_folders: Path, tmp_path: Path) -> None:
    for seed in range(8):
        out = tmp_path / f"s{seed}"
        split_dataset(class_folders, out, validation=0.5, seed=seed)
        homes = {
            split
            for split in ("train", "validation")
            for name in ("h00.png", "h00-copy.png")
            if (out / split / "happy" / name).exists()
        }
        assert len(homes) == 1


def test_split_with_test_and_links(class_folders: Path, tmp_path: Path) -> None:
    out = tmp_path / "linked"
    result = split_dataset(class_folders, out, validation=0.2, test=0.1, link=True)
    assert result.counts["test"] == {"happy": 3, "sad": 1}
    assert result.counts["validation"] == {"happy": 6, "sad": 2}
    files = list(out.rglob("*.png"))
    assert len(files) == 42 and all(p.is_symlink() for p in files)
    for path in files:
        assert Path(os.readlink(path)).is_absolute()
        assert Path(os.readlink(path)).resolve().is_relative_to(class_folders.resolve())


def test_split_rejects_bad_arguments(class_folders: Path) -> None:
    with pytest.raises(DataError, match="validation"):
        split_dataset(class_folders, class_folders.parent / "x", validation=1.2)
    with pytest.raises(DataError, match="validation \\+ test < 1"):
        split_dataset(class_folders, class_folders.parent / "x", validation=0.6, test=0.5)
    with pytest.raises(DataError, match="must not be inside"):
        split_dataset(class_folders, class_folders / "out")


def test_split_cli(class_folders: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["data", "split", str(class_folders), str(tmp_path / "o"), "--validation", "0.5"]
    ok = runner.invoke(main, [*args, "--format", "json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["counts"]["validation"] == {"happy": 15, "sad": 6}
    again = runner.invoke(main, args)
    assert again.exit_code == 2 and "not empty" in again.stderr


# --- check -------------------------------------------------------------------------------------


@pytest.fixture
def messy_data(tmp_path: Path) -> Path:
    """A data set with one example of every problem `check` knows."""
    root = tmp_path / "messy"
    for i in range(4):
        _write_image(root / "train" / "happy" / f"h{i}.png", seed=i)
    for i in range(3):
        _write_image(root / "train" / "sad" / f"s{i}.png", seed=10 + i, mode="RGB", size=24)
    for i in range(2):
        _write_image(root / "validation" / "happy" / f"vh{i}.png", seed=20 + i)
        _write_image(root / "validation" / "sad" / f"vs{i}.png", seed=30 + i)
    shutil.copy(root / "train" / "happy" / "h0.png", root / "train" / "happy" / "h0-again.png")
    shutil.copy(root / "train" / "happy" / "h1.png", root / "validation" / "happy" / "leak.png")
    shutil.copy(root / "train" / "happy" / "h2.png", root / "train" / "sad" / "conflict.png")
    _write_image(root / "validation" / "sad" / "really-png.jpg", seed=40)
    (root / "validation" / "sad" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (root / "train" / "notes.txt").write_text("not an image")
    return root


def test_check_finds_every_kind_of_problem(messy_data: Path) -> None:
    report = check_dataset(messy_data)
    assert report["counts"] == {
        "train": {"happy": 5, "sad": 4},
        "validation": {"happy": 3, "sad": 4},
    }
    assert report["imbalance"]["train"] == {
        "majority": "happy",
        "majority_share": 0.5556,
        "ratio": 1.25,
    }

    def names(items: list[dict]) -> list[str]:
        return sorted(os.path.basename(item["path"]) for item in items)

    def groups(key: str) -> list[list[str]]:
        return [sorted(os.path.basename(f["path"]) for f in g["files"]) for g in report[key]]

    assert names(report["undecodable"]) == ["broken.jpg"]
    assert names(report["extension_mismatch"]) == ["really-png.jpg"]
    assert "PNG content in a .jpg file" in report["extension_mismatch"][0]["reason"]
    assert groups("duplicates_within_split") == [["h0-again.png", "h0.png"]]
    assert groups("leakage") == [["h1.png", "leak.png"]]
    assert groups("label_conflicts") == [["conflict.png", "h2.png"]]
    assert report["modes"] == {"L": 12, "RGB": 3}
    assert report["sizes"] == {"16x16": 12, "24x24": 3}
    assert report["problems"] == 4
    text = format_report(report)
    assert "leak.png" in text and "broken.jpg" in text and "4 problem(s) found" in text


def test_check_a_plain_folder_of_classes(class_folders: Path) -> None:
    report = check_dataset(class_folders)
    assert report["counts"] == {".": {"happy": 30, "sad": 12}}
    assert report["problems"] == 0 and len(report["duplicates_within_split"]) == 1


def test_check_cli_json_and_strict(messy_data: Path, class_folders: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["data", "check", str(messy_data), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["leakage"]) == 1
    strict = runner.invoke(main, ["data", "check", str(messy_data), "--strict"])
    assert strict.exit_code == 1 and "label conflicts" in strict.stdout
    clean = runner.invoke(main, ["data", "check", str(class_folders), "--strict"])
    assert clean.exit_code == 0 and "no problems found" in clean.stdout
    missing = runner.invoke(main, ["data", "check", str(messy_data / "nope")])
    assert missing.exit_code == 2 and "not found" in missing.stderr


# --- train runs the same scan ------------------------------------------------------------------


@pytest.mark.slow
def test_train_warns_about_leakage_and_label_conflicts(
    tiny_data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from emotion_tf.config import load_config
    from emotion_tf.train.trainer import train
    from tests.conftest import tiny_overrides

    data = tmp_path / "data"
    shutil.copytree(tiny_data_dir, data)
    happy = sorted((data / "train" / "happy").iterdir())
    shutil.copy(happy[0], data / "validation" / "happy" / f"leak{happy[0].suffix}")
    shutil.copy(happy[1], data / "train" / "sad" / f"conflict{happy[1].suffix}")
    with caplog.at_level(logging.WARNING, logger="emotion_tf"):
        train(load_config(None, tiny_overrides(tmp_path / "run", data)), export=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("leakage: 1 image(s)") and "leak" in m for m in warnings), warnings
    assert any(m.startswith("label conflicts: 1 image(s)") for m in warnings), warnings
