"""Expected calibration error, temperature fitting, reliability diagrams, Wilson intervals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emotion_tf.calibration import (
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    plot_reliability,
    reliability_bins,
)
from emotion_tf.metrics import wilson_interval
from emotion_tf.predictors.outputs import apply_temperature


def _sampled(temperature: float, count: int = 4000, seed: int = 0):
    """Labels drawn from calibrated probabilities, then those probabilities distorted by
    1/temperature (so fitting must find `temperature` back)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.0, size=(count, 2))
    calibrated = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = (rng.random(count) < calibrated[:, 1]).astype(int)
    return labels, apply_temperature(calibrated, 1.0 / temperature)


def test_ece_is_the_weighted_gap_between_confidence_and_accuracy() -> None:
    probabilities = np.array([[0.9, 0.1]] * 10 + [[0.3, 0.7]] * 10)
    labels = np.array([0] * 5 + [1] * 5 + [1] * 10)  # 50% right at 0.9, 100% right at 0.7
    assert expected_calibration_error(labels, probabilities) == pytest.approx(0.5 * 0.4 + 0.5 * 0.3)
    bins = [b for b in reliability_bins(labels, probabilities) if b["count"]]
    assert [(b["count"], b["accuracy"]) for b in bins] == [(10, 1.0), (10, 0.5)]


def test_fitting_finds_the_temperature_that_distorted_the_probabilities() -> None:
    for true_temperature in (0.5, 2.0):
        labels, distorted = _sampled(true_temperature)
        fitted = fit_temperature(labels, distorted)
        assert fitted == pytest.approx(true_temperature, rel=0.1)
        fixed = apply_temperature(distorted, fitted)
        assert negative_log_likelihood(labels, fixed) < negative_log_likelihood(labels, distorted)
        assert expected_calibration_error(labels, fixed) < expected_calibration_error(
            labels, distorted
        )
        assert (fixed.argmax(1) == distorted.argmax(1)).all()  # never changes a label


def test_reliability_diagram_is_a_png(tmp_path: Path) -> None:
    labels, distorted = _sampled(2.0, count=500)
    target = tmp_path / "reliability.png"
    plot_reliability(target, {"raw": (labels, distorted)})
    with Image.open(target) as image:
        assert image.format == "PNG" and image.size == (500, 500)


def test_wilson_interval_contains_the_proportion_and_narrows_with_more_data() -> None:
    low, high = wilson_interval(930, 1000)
    assert low < 0.93 < high and high - low == pytest.approx(0.0316, abs=0.001)
    small = wilson_interval(93, 100)
    assert small[1] - small[0] > high - low
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0) and wilson_interval(10, 10)[0] < 0.8
