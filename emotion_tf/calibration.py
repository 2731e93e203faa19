"""How far confidences are from accuracies: expected calibration error, reliability diagrams,
and temperature scaling fitted by maximum likelihood (Guo et al. 2017, "On Calibration of
Modern Neural Networks")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emotion_tf.predictors.outputs import apply_temperature

DEFAULT_BINS = 10
# Temperatures are searched on a log scale in this range.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0


def reliability_bins(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = DEFAULT_BINS
) -> list[dict[str, Any]]:
    """Per equal-width confidence bin: count, mean confidence and accuracy of the top label."""
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, np.float64)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        chosen = index == b
        count = int(chosen.sum())
        rows.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": count,
                "confidence": float(confidence[chosen].mean()) if count else None,
                "accuracy": float(correct[chosen].mean()) if count else None,
            }
        )
    return rows


def expected_calibration_error(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = DEFAULT_BINS
) -> float:
    """Sum over confidence bins of (bin share) x |accuracy - mean confidence| (top label)."""
    rows = reliability_bins(labels, probabilities, bins)
    total = sum(row["count"] for row in rows)
    if total == 0:
        raise ValueError("expected_calibration_error needs at least one prediction")
    return float(
        sum(
            row["count"] / total * abs(row["accuracy"] - row["confidence"])
            for row in rows
            if row["count"]
        )
    )


def negative_log_likelihood(labels: np.ndarray, probabilities: np.ndarray) -> float:
    probabilities = np.asarray(probabilities, np.float64)
    picked = probabilities[np.arange(len(labels)), np.asarray(labels)]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))


def fit_temperature(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """The temperature T minimising the NLL of softmax(log(p) / T) on (labels, probabilities).

    The NLL is convex in 1/T, so a golden-section search on log T finds the minimum.
    """
    if len(labels) == 0:
        raise ValueError("fit_temperature needs at least one labelled prediction")

    def loss(log_t: float) -> float:
        return negative_log_likelihood(
            labels, apply_temperature(probabilities, float(np.exp(log_t)))
        )

    low, high = np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE)
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    loss_a, loss_b = loss(a), loss(b)
    for _ in range(60):
        if loss_a <= loss_b:
            high, b, loss_b = b, a, loss_a
            a = high - ratio * (high - low)
            loss_a = loss(a)
        else:
            low, a, loss_a = a, b, loss_b
            b = low + ratio * (high - low)
            loss_b = loss(b)
    return float(np.exp((low + high) / 2.0))


def plot_reliability(
    path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], bins: int = DEFAULT_BINS
) -> None:
    """A reliability diagram (accuracy against confidence per bin), one line per curve, with
    each curve's ECE in the legend; written atomically as PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emotion_tf.io_utils import atomic_write_bytes

    figure, axis = plt.subplots(figsize=(5, 5), dpi=100)
    axis.plot([0, 1], [0, 1], color="0.6", linestyle="--", label="perfectly calibrated")
    for name, (labels, probabilities) in curves.items():
        rows = [r for r in reliability_bins(labels, probabilities, bins) if r["count"]]
        ece = expected_calibration_error(labels, probabilities, bins)
        axis.plot(
            [r["confidence"] for r in rows],
            [r["accuracy"] for r in rows],
            marker="o",
            label=f"{name} (ECE {100 * ece:.1f}%, n={len(labels)})",
        )
    axis.set_xlabel("confidence (top label)")
    axis.set_ylabel("accuracy")
    axis.set_xlim(0.45, 1.0)
    axis.set_ylim(0.0, 1.0)
    axis.legend(loc="lower right", fontsize=8)
    axis.grid(alpha=0.3)
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    atomic_write_bytes(Path(path), buffer.getvalue())
