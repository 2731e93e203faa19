"""One answer per photo: the rules that combine its faces, and per-photo rows."""

from __future__ import annotations

import numpy as np
import pytest

from emotion_tf.errors import ConfigError
from emotion_tf.faces.photo_label import photo_probabilities
from emotion_tf.predict import FacePredictionRow, format_photo_rows, per_photo_rows

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


def face(path: str, index: int, happy: float, side: int) -> FacePredictionRow:
    label = "happy" if happy >= 0.5 else "sad"
    return FacePredictionRow(
        path,
        label,
        max(happy, 1 - happy),
        {"happy": happy, "sad": 1 - happy},
        face=index,
        box=[0, 0, side, side],
        score=0.99,
        source="detector",
    )


def test_per_photo_rows_group_faces_and_keep_no_face_and_error_rows() -> None:
    rows = [
        face("a.jpg", 0, 0.3, 20),
        face("a.jpg", 1, 0.9, 10),
        face("a.jpg", 2, 0.9, 10),
        FacePredictionRow("b.jpg", no_face=True),
        FacePredictionRow("c.jpg", error="cannot be decoded as jpg/png/bmp/gif"),
        FacePredictionRow(
            "d.jpg",
            "sad",
            0.6,
            {"happy": 0.4, "sad": 0.6},
            face=0,
            box=[0, 0, 5, 5],
            source="whole-image",
        ),
        face("a.jpg", 0, 0.8, 10),  # the same file named again: a photo of its own
    ]
    photos = list(per_photo_rows(rows, CLASSES, "area"))
    assert [p.path for p in photos] == ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "a.jpg"]
    a = photos[0]
    assert a.faces == 3 and a.rule == "area" and a.source == "detector"
    assert a.probabilities["happy"] == pytest.approx((0.3 * 400 + 0.9 * 100 * 2) / 600)
    assert a.label == "happy"
    assert next(per_photo_rows(rows[:3], CLASSES, "largest")).label == "sad"
    assert photos[1].no_face and photos[1].label is None
    assert photos[2].error and photos[2].label is None
    assert photos[3].source == "whole-image" and photos[3].faces == 0 and photos[3].rule is None
    assert photos[4].faces == 1 and photos[4].probabilities["happy"] == pytest.approx(0.8)
    csv_text = format_photo_rows(photos, CLASSES, "csv").splitlines()
    assert csv_text[0] == "path,faces,source,rule,label,confidence,happy,sad,error"
    assert csv_text[2].endswith("no face found") and len(csv_text) == 6
    assert "no face found" in format_photo_rows(photos, CLASSES, "table")
