"""The web-photos benchmark's split by what a reader sees in each photo."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.web_photos import (
    READER_LABELS,
    PhotoResult,
    photo_key,
    read_reader_labels,
    reader_labels_for,
    score,
)


def _photo(path: str, label: int, p_happy: float) -> PhotoResult:
    return PhotoResult(path, label, [[p_happy, 1 - p_happy]], [1.0], None, 0.0)


def test_score_splits_photos_by_the_readers_labels() -> None:
    results = [
        _photo("/d/validation/happy/a.jpg", 0, 0.9),  # readable, right
        _photo("/d/validation/happy/b.jpg", 0, 0.2),  # readable, wrong
        _photo("/d/validation/sad/a.jpg", 1, 0.1),  # unclear, right
        _photo("/d/train/sad/c.jpg", 1, 0.8),  # unclear, wrong
        _photo("/d/train/happy/d.jpg", 0, 0.7),  # not in the reader's list
    ]
    reader = {
        "validation/happy/a.jpg": "happy",
        "validation/happy/b.jpg": "happy",
        "validation/sad/a.jpg": "unclear",
        "train/sad/c.jpg": "unclear",
    }
    figures = score(results, "area", reader)
    assert (figures["readable"], figures["correct_readable"]) == (2, 1)
    assert (figures["unclear"], figures["correct_unclear"]) == (2, 1)
    assert figures["correct"] == 3
    assert "readable" not in score(results, "area")


@pytest.mark.shared_data
def test_reader_labels_name_every_web_photo_once(shared_data_dir: Path) -> None:
    web = shared_data_dir / "web-happy-sad"
    if not web.is_dir():
        pytest.fail(f"web-happy-sad not found at {web}")
    photos = {photo_key(str(p)) for p in web.glob("*/*/*") if p.parent.name in ("happy", "sad")}
    labels = read_reader_labels(READER_LABELS)
    assert set(labels) == photos
    assert set(labels.values()) == {"happy", "sad", "unclear"}


def test_reader_labels_of_another_data_set_are_not_used(tmp_path: Path) -> None:
    csv = tmp_path / "reader.csv"
    csv.write_text("photo,reader\ntrain/happy/a.jpg,happy\n")
    assert reader_labels_for([("/x/train/happy/a.jpg", 0)], csv) == {"train/happy/a.jpg": "happy"}
    assert reader_labels_for([("/x/train/happy/a.jpg", 0), ("/x/train/sad/b.jpg", 1)], csv) is None
