"""Near-duplicate photos are grouped, and grouped photos never straddle a CV fold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.web_photos import folds
from emotion_tf.data.near_duplicates import near_duplicate_groups


def scene(seed: int) -> Image.Image:
    """A smooth random picture (blocks upscaled), so thumbnails keep its structure."""
    blocks = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize((320, 240), Image.Resampling.BICUBIC)


def test_resized_recompressed_copies_group_and_other_pictures_do_not(tmp_path: Path) -> None:
    scene(1).save(tmp_path / "a.png")
    scene(1).resize((200, 150)).save(tmp_path / "a_small.jpg", quality=70)
    scene(1).convert("L").save(tmp_path / "a_gray.gif")
    scene(2).save(tmp_path / "b.png")
    scene(3).save(tmp_path / "c.jpg", quality=90)
    names = ["a.png", "b.png", "a_small.jpg", "c.jpg", "a_gray.gif"]
    groups = near_duplicate_groups([tmp_path / n for n in names])
    assert groups == [0, 1, 0, 2, 0]
    assert near_duplicate_groups([]) == []


def test_grouped_folds_keep_groups_together_and_stay_stratified() -> None:
    photos = [(f"p{i}", i % 2) for i in range(40)]
    groups = [i // 4 * 2 + i % 2 for i in range(40)]  # pairs of same-class photos
    split = folds(photos, 5, seed=3, groups=groups)
    assert sorted(i for fold in split for i in fold) == list(range(40))
    fold_of = {i: k for k, fold in enumerate(split) for i in fold}
    for g in set(groups):
        assert len({fold_of[i] for i in range(40) if groups[i] == g}) == 1
    sizes = sorted(sum(photos[i][1] for i in fold) for fold in split)
    assert sizes == [4, 4, 4, 4, 4]  # 10 pairs of sad photos, 2 pairs per fold
    ungrouped = folds(photos, 5, seed=3)
    assert sorted(len(f) for f in ungrouped) == [8] * 5
