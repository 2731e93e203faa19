"""Figures as PNG bytes: training curves, confusion matrix, ROC curve, accuracy against
coverage, mistakes grid.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no
global state), so they work on headless servers and inside training jobs.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

TRAIN_COLOUR = "#0072B2"
VAL_COLOUR = "#D55E00"
DPI = 100


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def training_curves(history: list[dict[str, Any]]) -> bytes:
    """Loss and accuracy per epoch, training vs validation, side by side."""
    figure = Figure(figsize=(10, 4))
    epochs = [row["epoch"] for row in history]
    for column, (metric, title) in enumerate((("loss", "Loss"), ("accuracy", "Accuracy"))):
        axes = figure.add_subplot(1, 2, column + 1)
        for key, name, colour in (
            (metric, "train", TRAIN_COLOUR),
            (f"val_{metric}", "validation", VAL_COLOUR),
        ):
            points = [(e, row[key]) for e, row in zip(epochs, history) if key in row]
            if points:
                xs, ys = zip(*points)
                axes.plot(xs, ys, marker="o", markersize=3, color=colour, label=name)
        if metric == "accuracy" and any(f"val_{metric}" in row for row in history):
            best = max(history, key=lambda row: row.get("val_accuracy", -math.inf))
            axes.axvline(
                best["epoch"],
                color="#999999",
                linestyle=":",
                linewidth=1,
                label=f"best val (epoch {best['epoch']})",
            )
        axes.set_title(title)
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
        axes.legend()
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    return _png(figure)


def confusion_matrix(matrix: list[list[int]], class_names: list[str]) -> bytes:
    """Counts with the share of each true class (row) in brackets; darker = larger share."""
    counts = np.asarray(matrix, dtype=np.int64)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    size = 1.6 + 1.2 * len(class_names)
    figure = Figure(figsize=(size + 1.2, size))
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of true class")
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            axes.text(
                j,
                i,
                f"{counts[i, j]}\n({shares[i, j]:.0%})",
                ha="center",
                va="center",
                color="white" if shares[i, j] > 0.5 else "black",
                fontsize=11,
            )
    ticks = range(len(class_names))
    axes.set_xticks(ticks, class_names)
    axes.set_yticks(ticks, class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("Confusion matrix (validation)")
    return _png(figure)


def roc_points(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct score threshold, from (0, 0) to (1, 1)."""
    positive = np.asarray(positive, dtype=bool)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    sorted_scores = np.asarray(scores)[order]
    hits = positive[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(hits) - 1]
    tps = np.cumsum(hits)[last_of_run]
    fps = (last_of_run + 1) - tps
    tpr = np.r_[0.0, tps / max(1, positive.sum())]
    fpr = np.r_[0.0, fps / max(1, (~positive).sum())]
    return fpr, tpr


def roc_curve(labels: np.ndarray, probabilities: np.ndarray, class_names: list[str]) -> bytes:
    """ROC curve: for two classes, of the second class's probability; else one-vs-rest."""
    from emotion_tf.metrics import roc_auc

    figure = Figure(figsize=(5.5, 5))
    axes = figure.add_subplot(1, 1, 1)
    targets = [1] if len(class_names) == 2 else list(range(len(class_names)))
    for index in targets:
        positive = np.asarray(labels) == index
        if positive.all() or not positive.any():
            continue
        fpr, tpr = roc_points(positive, probabilities[:, index])
        auc = roc_auc(positive.astype(np.int64), probabilities[:, index])
        name = class_names[index]
        label = f"{name} vs rest" if len(targets) > 1 else f"positive class: {name}"
        axes.plot(fpr, tpr, linewidth=2, label=f"{label} (AUC {auc:.4f})")
    axes.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1, label="chance")
    axes.set_xlim(-0.01, 1.01)
    axes.set_ylim(-0.01, 1.01)
    axes.set_aspect("equal")
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title("ROC curve (validation)")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    return _png(figure)


def risk_coverage_curve(labels: np.ndarray, probabilities: np.ndarray, title: str) -> bytes:
    """Accuracy on the photos kept when abstaining on the least confident ones, against the
    share kept (coverage), with the confidence bar (`--min-confidence`) at 90% and 80%."""
    from emotion_tf.metrics import risk_coverage

    probabilities = np.asarray(probabilities, dtype=np.float64)
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == np.asarray(labels)
    order = np.argsort(-confidence, kind="stable")
    kept = np.arange(1, len(order) + 1)
    accuracy = np.cumsum(right[order]) / kept
    figure = Figure(figsize=(6, 4.2))
    axes = figure.add_subplot(1, 1, 1)
    start = min(len(order) - 1, max(0, len(order) // 10 - 1))  # below 10% the curve is noise
    axes.plot(kept[start:] / len(order), 100 * accuracy[start:], color=VAL_COLOUR, linewidth=2)
    for point in risk_coverage(labels, probabilities):
        if round(point["coverage"], 2) in (0.8, 0.9):
            axes.plot(point["coverage"], 100 * point["accuracy"], "o", color=TRAIN_COLOUR)
            axes.annotate(
                f"{point['coverage']:.0%}: {point['accuracy']:.1%}\n"
                f"(--min-confidence {point['min_confidence']:.3f})",
                (point["coverage"], 100 * point["accuracy"]),
                textcoords="offset points",
                xytext=(-10, 12),
                ha="right",
                fontsize=8,
            )
    axes.set_xlim(0.0, 1.02)
    axes.set_xlabel("coverage (share of photos answered, most confident first)")
    axes.set_ylabel("accuracy on the answered photos (%)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    return _png(figure)


def image_grid(
    images: list[np.ndarray], captions: list[str], title: str, columns: int = 4
) -> bytes:
    """Images in a grid with a caption under each; a note when there are none."""
    if not images:
        figure = Figure(figsize=(6, 1.2))
        figure.text(0.5, 0.5, title + ": none", ha="center", va="center", fontsize=13)
        return _png(figure)
    columns = min(columns, len(images))
    rows = math.ceil(len(images) / columns)
    figure = Figure(figsize=(2.6 * columns, 2.9 * rows + 0.4), layout="constrained")
    for i, (image, caption) in enumerate(zip(images, captions)):
        axes = figure.add_subplot(rows, columns, i + 1)
        squeezed = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
        axes.imshow(squeezed, cmap="gray" if squeezed.ndim == 2 else None, vmin=0, vmax=255)
        axes.set_title(caption, fontsize=8.5)
        axes.axis("off")
    figure.suptitle(title, fontsize=13)
    return _png(figure)
