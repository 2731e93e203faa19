"""`evaluate --mistakes`: the surest mistakes, listed in the metrics and drawn on a sheet."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from emotion_tf.cli import MISTAKES_SHOWN, main
from emotion_tf.evaluate import LabelledPredictions, most_confident_mistakes


def test_mistakes_are_the_wrong_files_surest_first() -> None:
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7], [0.55, 0.45]])
    labels = np.array([0, 0, 0, 1, 1])  # wrong: b (0.6), c (0.8), e (0.55)
    paths = ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"]
    found = LabelledPredictions(
        Path("."),
        labels,
        probabilities,
        [],
        {},
        paths,
        ["detector", "whole-image", "detector", "detector", "second-look"],
        {"c.jpg": [[1, 2, 30, 30], [40, 5, 10, 10]]},
    )
    shown = most_confident_mistakes(found, ["happy", "sad"], 2)
    assert [m["path"] for m in shown] == ["c.jpg", "b.jpg"]
    assert shown[0] == {
        "path": "c.jpg",
        "true": "happy",
        "predicted": "sad",
        "confidence": 0.8,
        "source": "detector",
        "boxes": [[1, 2, 30, 30], [40, 5, 10, 10]],
    }
    assert shown[1]["source"] == "whole-image" and shown[1]["boxes"] == []
    every = most_confident_mistakes(found, ["happy", "sad"], 10)
    assert [m["path"] for m in every] == ["c.jpg", "b.jpg", "e.jpg"]


def test_evaluate_draws_and_lists_its_mistakes(tiny_export: Path, tiny_data_dir, tmp_path) -> None:
    """Every image filed under both classes: exactly one copy of each is a mistake."""
    images = sorted((tiny_data_dir / "validation" / "happy").iterdir())[:8]
    for label in ("happy", "sad"):
        (tmp_path / "both" / label).mkdir(parents=True)
        for image in images:
            shutil.copy(image, tmp_path / "both" / label / image.name)
    sheet, listed = tmp_path / "mistakes.png", tmp_path / "metrics.json"
    args = ["evaluate", str(tmp_path / "both"), "-m", str(tiny_export), "--output", str(listed)]
    result = CliRunner().invoke(main, [*args, "--mistakes", str(sheet)])
    assert result.exit_code == 0, result.output
    mistakes = json.loads(listed.read_text())["mistakes"]
    assert len(mistakes) == len(images) <= MISTAKES_SHOWN
    assert {Path(m["path"]).name for m in mistakes} == {image.name for image in images}
    for mistake in mistakes:
        assert mistake["true"] != mistake["predicted"]
        assert Path(mistake["path"]).parent.name == mistake["true"]
    confidences = [m["confidence"] for m in mistakes]
    assert confidences == sorted(confidences, reverse=True)
    with Image.open(sheet) as picture:
        assert picture.format == "PNG" and picture.width > 400
    assert f"drew {len(images)} mistake(s)" in result.stderr

    plain = CliRunner().invoke(main, args)
    assert plain.exit_code == 0 and "mistakes" not in json.loads(listed.read_text())


def test_evaluate_report_is_one_page_with_accuracy_against_coverage(
    tiny_export: Path, tiny_data_dir, tmp_path
) -> None:
    from emotion_tf.report.html import fmt
    from tests.test_report import _Page

    page_path, listed = tmp_path / "evaluation.html", tmp_path / "metrics.json"
    args = ["evaluate", str(tiny_data_dir), "-m", str(tiny_export), "--output", str(listed)]
    result = CliRunner().invoke(main, [*args, "--report", str(page_path)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(listed.read_text())
    page = _Page()
    page.feed(page_path.read_text())
    assert page.external == []
    assert {"confusion", "coverage", "mistakes"} <= set(page.images)
    assert all(src.startswith("data:image/png;base64,") for src in page.images.values())
    assert page.metrics["accuracy"] == fmt(metrics["accuracy"])
    assert f"{metrics['photos']} photo(s)" in page_path.read_text()
    assert f"report in {page_path}" in result.stderr
