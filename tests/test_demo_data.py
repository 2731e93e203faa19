"""Tests for the synthetic schematic-face demo data generator."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageFilter

from emotion_tf.cli import main
from emotion_tf.data import demo
from emotion_tf.errors import DataError

NAME_RE = re.compile(r"^(happy|sad)_(\d{4})\.(jpg|png|bmp|gif)$")


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, int]]]:
    out = tmp_path_factory.mktemp("demo") / "data"
    counts = demo.generate_demo_dataset(out, per_class=6, seed=0)
    return out, counts


def test_layout_and_counts(tiny: tuple[Path, dict[str, dict[str, int]]]) -> None:
    out, counts = tiny
    assert counts == {"train": {"happy": 4, "sad": 4}, "validation": {"happy": 2, "sad": 2}}
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "train", "validation"]
    # No temporary directories left beside the output.
    assert [p.name for p in out.parent.iterdir()] == ["data"]
    for split in ("train", "validation"):
        assert sorted(p.name for p in (out / split).iterdir()) == ["happy", "sad"]
    for expression in ("happy", "sad"):
        numbers = []
        for split in ("train", "validation"):
            names = sorted(p.name for p in (out / split / expression).iterdir())
            assert len(names) == counts[split][expression]
            for name in names:
                match = NAME_RE.match(name)
                assert match, name
                assert match.group(1) == expression
                numbers.append(int(match.group(2)))
        assert sorted(numbers) == list(range(1, 7))  # unique across the two splits
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "synthetic" in readme
    assert "emotion-tf data make-demo data --per-class 6 --seed 0" in readme


def test_formats_and_modes(tiny: tuple[Path, dict[str, dict[str, int]]]) -> None:
    out, _ = tiny
    images = [p for p in out.rglob("*") if p.is_file() and p.suffix != ".md"]
    assert {p.suffix for p in images} == {".jpg", ".png", ".bmp", ".gif"}
    modes = set()
    for path in images:
        with Image.open(path) as image:
            image.load()
            modes.add(image.mode)
            assert all(40 <= side <= 160 for side in image.size), (path, image.size)
            if path.suffix == ".bmp":
                assert max(image.size) <= 64
    assert "L" in modes  # grayscale
    assert modes & {"RGB", "RGBA"}  # colour
    assert "P" in modes  # palette GIF


def test_deterministic(tmp_path: Path, tiny: tuple[Path, dict[str, dict[str, int]]]) -> None:
    out, _ = tiny
    again = tmp_path / "again"
    demo.generate_demo_dataset(again, per_class=6, seed=0)
    assert _files(again) == _files(out)
    other = tmp_path / "other"
    demo.generate_demo_dataset(other, per_class=6, seed=1)
    images = {data for name, data in _files(out).items() if not name.endswith(".md")}
    other_images = {data for name, data in _files(other).items() if not name.endswith(".md")}
    assert len(other_images) == 12
    assert not images & other_images  # a different seed gives different pictures


def test_draw_face_modes_and_size() -> None:
    rng = np.random.default_rng(0)
    colour = demo.draw_face(rng, "happy", 48, grayscale=False)
    gray = demo.draw_face(rng, "sad", 37, grayscale=True)
    assert (colour.mode, colour.size) == ("RGB", (48, 48))
    assert (gray.mode, gray.size) == ("L", (37, 37))


def test_invalid_expression_raises() -> None:
    with pytest.raises(ValueError, match=r"Received: expression='angry'"):
        demo.draw_face(np.random.default_rng(0), "angry", 32, grayscale=False)


def test_refuses_non_empty_dir(tmp_path: Path) -> None:
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("precious", encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(str(out))):
        demo.generate_demo_dataset(out, per_class=2)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    counts = demo.generate_demo_dataset(out, per_class=2, overwrite=True)
    assert counts == {"train": {"happy": 1, "sad": 1}, "validation": {"happy": 1, "sad": 1}}
    assert not (out / "keep.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_empty_existing_dir_is_fine(tmp_path: Path) -> None:
    out = tmp_path / "data"
    out.mkdir()
    demo.generate_demo_dataset(out, per_class=2)
    assert (out / "train" / "happy").is_dir()


def test_cli(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["data", "make-demo", str(out), "--per-class", "3", "--seed", "5"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["train"] == {"happy": 2, "sad": 2}
    assert len([p for p in out.rglob("*") if p.suffix != ".md" and p.is_file()]) == 6


def _edges(image: Image.Image) -> np.ndarray:
    """Polarity-free line map (dark ink on light skin and light ink on dark skin alike)."""
    arr = np.asarray(image, dtype=np.float64)
    local_mean = np.asarray(image.filter(ImageFilter.BoxBlur(3)), dtype=np.float64)
    edges = np.abs(arr - local_mean)
    return edges / (edges.mean() + 1e-6)


def test_classes_differ_in_mouth_region() -> None:
    # With the random position / size / rotation switched off (jitter=0) the face sits in the
    # same place, so class means can be compared pixel-wise; everything else still varies.
    n = 40
    maps = {}
    for index, expression in enumerate(("happy", "sad")):
        rng = np.random.default_rng([123, index])
        maps[expression] = np.stack(
            [_edges(demo._render(rng, expression, 64, 64, True, jitter=0.0)) for _ in range(n)]
        )
    mouth = (slice(38, 54), slice(22, 42))
    half = n // 2

    def mad(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a.mean(axis=0) - b.mean(axis=0))[mouth].mean())

    happy, sad = maps["happy"], maps["sad"]
    # Same sample sizes on both sides: halves against halves.
    between = min(mad(happy[:half], sad[:half]), mad(happy[half:], sad[half:]))
    within = max(mad(happy[:half], happy[half:]), mad(sad[:half], sad[half:]))
    assert between > 1.2 * within, (between, within)
