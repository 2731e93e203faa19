""" "Can't tell": --min-confidence labels weak answers "unclear", and evaluate's accuracy
against coverage shows what each bar keeps."""

from __future__ import annotations

import numpy as np
import pytest

import emotion_tf
from emotion_tf.errors import ConfigError
from emotion_tf.metrics import risk_coverage
from emotion_tf.pipeline.options import UNCLEAR, PhotoOptions


def test_risk_coverage_keeps_the_most_confident_first() -> None:
    truth = np.array([0, 0, 1, 1, 0])
    probs = np.array([[0.99, 0.01], [0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55]])
    curve = {round(p["coverage"], 2): p for p in risk_coverage(truth, probs)}
    assert curve[1.0]["accuracy"] == pytest.approx(3 / 5)
    assert curve[0.6]["photos"] == 3 and curve[0.6]["accuracy"] == 1.0
    assert curve[0.6]["min_confidence"] == pytest.approx(0.8)
    low, high = curve[1.0]["accuracy_ci95"]
    assert low < 0.6 < high


def test_min_confidence_labels_weak_answers_unclear_and_keeps_probabilities() -> None:
    model = emotion_tf.load()
    image = np.full((64, 64), 128, np.uint8)
    plain = model.predict_photo(image, faces="none")
    above = model.predict_photo(image, faces="none", min_confidence=plain.confidence - 1e-3)
    below = model.predict_photo(image, faces="none", min_confidence=plain.confidence + 1e-3)
    assert above.label == plain.label and below.label == UNCLEAR
    assert below.probabilities == plain.probabilities and below.confidence == plain.confidence
    [face] = model.predict(image, faces="none", min_confidence=1.0).faces
    assert face.label == UNCLEAR
    with pytest.raises(ConfigError, match="min_confidence"):
        PhotoOptions(min_confidence=1.5)
