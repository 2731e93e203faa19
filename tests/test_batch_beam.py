"""`emotion-tf batch` on Beam's DirectRunner: every input accounted for, rows equal to
`predict --format json` for the same files, and group summaries that match counts made here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from emotion_tf.cli import main

pytest.importorskip("apache_beam")  # the `beam` extra; README command 2 installs it

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


@pytest.fixture(scope="module")
def inputs(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two campaigns of real web photos, with broken files among them."""
    root = tmp_path_factory.mktemp("campaigns")
    source = shared_data_dir / "web-happy-sad" / "validation"
    photos = sorted((source / "happy").iterdir())[:3] + sorted((source / "sad").iterdir())[:3]
    for index, photo in enumerate(photos):
        folder = root / ("spring" if index % 2 else "autumn")
        folder.mkdir(exist_ok=True)
        shutil.copy(photo, folder / photo.name)
    (root / "spring" / "empty.jpg").write_bytes(b"")
    (root / "spring" / "text.png").write_text("not an image")
    (root / "autumn" / "truncated.jpg").write_bytes(photos[0].read_bytes()[:200])
    Image.new("L", (2, 45000)).save(root / "autumn" / "strip.png")
    (root / "autumn" / "notes.txt").write_text("ignored: not an image name")
    return root


def _jsonl(folder: Path, prefix: str) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(folder.glob(f"{prefix}-*"))
        for line in path.read_text().splitlines()
        if line
    ]


def test_batch_accounts_for_every_file_and_matches_predict(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "batch",
            str(inputs),
            "--output",
            str(out),
            "--per-photo",
            "--summary-by",
            "folder",
            "--runner=DirectRunner",
        ],
    )
    assert result.exit_code == 1, result.output  # 1: there were dead letters
    assert "read 10 = answered 6 + dead letters 4" in result.stderr
    rows = {row["path"]: row for row in _jsonl(out, "rows")}
    dead = {row["path"]: row["error"] for row in _jsonl(out, "dead_letters")}
    assert len(rows) == 6 and len(dead) == 4 and not set(rows) & set(dead)
    assert {Path(p).name for p in dead} == {"empty.jpg", "text.png", "truncated.jpg", "strip.png"}
    assert all(reason for reason in dead.values())

    predicted = CliRunner().invoke(
        main, ["predict", "--per-photo", "--format", "json", *sorted(rows)]
    )
    assert predicted.exit_code == 0, predicted.output
    for expected in json.loads(predicted.stdout):
        got = rows[expected["path"]]
        assert got.keys() == expected.keys()
        assert (got["label"], got["faces"], got["source"]) == (
            expected["label"],
            expected["faces"],
            expected["source"],
        )
        np.testing.assert_allclose(
            [got["probabilities"][k] for k in expected["probabilities"]],
            list(expected["probabilities"].values()),
            atol=1e-5,
        )

    groups = json.loads((out / "groups.json").read_text())
    for name in ("spring", "autumn"):
        in_group = [r for p, r in rows.items() if Path(p).parent.name == name]
        unreadable = [p for p in dead if Path(p).parent.name == name]
        summary = groups[name]
        assert summary["photos"] == len(in_group) + len(unreadable)
        assert summary["unreadable"] == len(unreadable)
        assert summary["faces"] == sum(r["faces"] for r in in_group)
        for label in ("happy", "sad"):
            count = sum(1 for r in in_group if r["label"] == label)
            assert summary["labels"][label]["count"] == count
            low, high = summary["labels"][label]["ci95"]
            assert low <= count / len(in_group) <= high
    page = (out / "groups.html").read_text()
    assert "<svg" in page and "spring" in page and "autumn" in page
    assert (out / "groups.csv").read_text().startswith("group,photos,faces")


def test_predict_summary_by_gives_the_same_groups(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "summary"
    result = CliRunner().invoke(
        main,
        ["predict", str(inputs), "--summary-by", "folder", "--summary-output", str(out)],
    )
    assert result.exit_code == 1  # the broken files
    groups = json.loads((out / "groups.json").read_text())
    assert groups["spring"]["photos"] == 5 and groups["spring"]["unreadable"] == 2
    assert groups["autumn"]["photos"] == 5 and groups["autumn"]["unreadable"] == 2
