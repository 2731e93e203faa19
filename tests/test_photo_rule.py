"""One answer per photo: the rules that combine its faces, and per-photo rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emotion_tf.errors import ConfigError
from emotion_tf.faces.photo_label import photo_probabilities
from emotion_tf.predict import PhotoPredictionRow, format_rows

CLASSES = ["happy", "sad"]


def test_rules_combine_the_faces_probabilities() -> None:
    probs = [[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]
    areas = [100.0, 400.0, 100.0]
    np.testing.assert_allclose(photo_probabilities(probs, areas, "largest"), [0.2, 0.8])
    np.testing.assert_allclose(photo_probabilities(probs, areas, "mean"), [1.4 / 3, 1.6 / 3])
    np.testing.assert_allclose(photo_probabilities(probs, areas, "area"), [1 / 3, 2 / 3])
    # A crowd of small happy faces outvotes one large sad face only without area weights.
    crowd = [[0.1, 0.9]] + [[0.8, 0.2]] * 4
    crowd_areas = [1000.0] + [50.0] * 4
    assert np.argmax(photo_probabilities(crowd, crowd_areas, "mean")) == 0
    assert np.argmax(photo_probabilities(crowd, crowd_areas, "area")) == 1
    with pytest.raises(ConfigError, match="photo rule"):
        photo_probabilities(probs, areas, "vote")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        photo_probabilities([], [], "mean")


def test_photo_rows_keep_no_face_and_error_rows_in_every_format() -> None:
    rows = [
        PhotoPredictionRow(
            "a.jpg",
            "happy",
            0.7,
            {"happy": 0.7, "sad": 0.3},
            faces=3,
            source="detector",
            rule="area",
        ),
        PhotoPredictionRow("b.jpg", no_face=True),
        PhotoPredictionRow("c.jpg", error="cannot be decoded as an image"),
    ]
    csv_text = format_rows(rows, CLASSES, "csv").splitlines()
    assert csv_text[0] == "path,faces,source,rule,label,confidence,happy,sad,no_face,error"
    assert csv_text[1].endswith(",0,") and csv_text[2].endswith(",1,")
    assert csv_text[3].endswith(",0,cannot be decoded as an image") and len(csv_text) == 4
    assert "no face found" in format_rows(rows, CLASSES, "table")
    as_json = json.loads(format_rows(rows, CLASSES, "json"))
    assert [r["no_face"] for r in as_json] == [False, True, False]
    lines = format_rows(rows, CLASSES, "jsonl").splitlines()
    assert [json.loads(line) for line in lines] == as_json
