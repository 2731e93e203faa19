"""Classification metrics from labels and predicted probabilities (numpy only)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from emotion_tf.errors import NonFiniteError

# The figures an export carries in its metadata, and `train` and `export` both put there.
HEADLINE_KEYS = ("accuracy", "balanced_accuracy", "roc_auc", "count")


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of a metrics dict (those of HEADLINE_KEYS it has)."""
    return {key: metrics[key] for key in HEADLINE_KEYS if key in metrics}


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def roc_auc(y_true_binary: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve via the rank-sum statistic (ties get average ranks)."""
    positives = int(y_true_binary.sum())
    negatives = len(y_true_binary) - positives
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    start = 0
    while start < len(scores):  # average ranks over runs of equal scores
        end = start
        while end + 1 < len(scores) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    rank_sum = ranks[y_true_binary.astype(bool)].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def classification_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, class_names: list[str]
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-class precision/recall/F1, confusion matrix, ROC AUC."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    bad = int(np.count_nonzero(~np.isfinite(probabilities).all(axis=-1)))
    if bad:
        raise NonFiniteError(
            f"the model gave NaN or infinite scores for {bad} of {len(probabilities)} image(s): "
            "no metrics computed (did training diverge?)"
        )
    num_classes = len(class_names)
    y_pred = probabilities.argmax(axis=1)
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    per_class: dict[str, dict[str, float]] = {}
    recalls = []
    for index, name in enumerate(class_names):
        tp = matrix[index, index]
        predicted = matrix[:, index].sum()
        actual = matrix[index, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(actual),
        }
        if actual:
            recalls.append(recall)
    aucs = [
        roc_auc((y_true == i).astype(np.int64), probabilities[:, i]) for i in range(num_classes)
    ]
    valid_aucs = [a for a in aucs if a is not None]
    if num_classes == 2:
        auc = aucs[1]
    else:
        auc = float(np.mean(valid_aucs)) if valid_aucs else None
    return {
        "count": len(y_true),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else 0.0,
        "balanced_accuracy": float(np.mean(recalls)) if recalls else 0.0,
        "roc_auc": auc,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "class_names": list(class_names),
    }


COVERAGES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)


def risk_coverage(y_true: np.ndarray, probabilities: np.ndarray) -> list[dict[str, Any]]:
    """Accuracy when abstaining on the least confident photos: for each coverage in COVERAGES,
    the share kept (most confident first), the confidence bar that keeps it and the accuracy
    on the kept photos with its 95% interval. A user picks `--min-confidence` from it."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == np.asarray(y_true)
    order = np.argsort(-confidence, kind="stable")
    curve = []
    for coverage in COVERAGES:
        kept = max(1, round(coverage * len(order)))
        chosen = order[:kept]
        correct = int(right[chosen].sum())
        curve.append(
            {
                "coverage": kept / len(order),
                "min_confidence": float(confidence[chosen].min()),
                "photos": kept,
                "accuracy": correct / kept,
                "accuracy_ci95": wilson_interval(correct, kept),
            }
        )
    return curve


def format_metrics(metrics: dict[str, Any]) -> str:
    """A human-readable report of `classification_metrics` output."""
    names = metrics["class_names"]
    auc = metrics.get("roc_auc")
    lines = [
        f"images            {metrics['count']}",
        f"accuracy          {metrics['accuracy']:.4f}" + format_interval(metrics, "accuracy_ci95"),
        f"balanced accuracy {metrics['balanced_accuracy']:.4f}",
        f"ROC AUC           {auc:.4f}" if auc is not None else "ROC AUC           n/a",
    ]
    if metrics.get("expected_calibration_error") is not None:
        ece = metrics["expected_calibration_error"]
        lines.append(f"calibration error {ece:.4f} (expected calibration error, 10 bins)")
    lines += ["", f"{'class':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name in names:
        row = metrics["per_class"][name]
        lines.append(
            f"{name:<12}{row['precision']:>10.4f}{row['recall']:>10.4f}"
            f"{row['f1']:>10.4f}{row['support']:>10d}" + format_interval(row, "recall_ci95")
        )
    lines += [
        "",
        "confusion matrix (rows: true, columns: predicted)",
        " " * 12 + "".join(f"{n:>10}" for n in names),
    ]
    for name, row in zip(names, metrics["confusion_matrix"]):
        lines.append(f"{name:<12}" + "".join(f"{v:>10d}" for v in row))
    if metrics.get("risk_coverage"):
        lines += [
            "",
            f"{'coverage':<10}{'bar':>8}{'photos':>8}{'accuracy':>10}  (abstaining below the bar)",
        ]
        for point in metrics["risk_coverage"]:
            lines.append(
                f"{point['coverage']:<10.0%}{point['min_confidence']:>8.3f}{point['photos']:>8d}"
                f"{point['accuracy']:>10.4f}" + format_interval(point, "accuracy_ci95")
            )
    return "\n".join(lines)


def format_interval(values: dict[str, Any], key: str) -> str:
    """`values[key]`, a [low, high] pair, as the reports print a 95% interval ("" if absent)."""
    low_high = values.get(key)
    return f"  (95% CI {low_high[0]:.4f}-{low_high[1]:.4f})" if low_high else ""


def wilson_interval(successes: int, total: int, z: float = 1.959964) -> list[float]:
    """The Wilson score interval for a proportion (95% for the default z)."""
    if total <= 0:
        return [0.0, 1.0]
    p = successes / total
    denominator = 1.0 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return [max(0.0, centre - half), min(1.0, centre + half)]


def add_intervals(metrics: dict[str, Any]) -> dict[str, Any]:
    """Add 95% Wilson intervals for accuracy (`accuracy_ci95`) and each class's recall."""
    matrix = metrics["confusion_matrix"]
    total = sum(sum(row) for row in matrix)
    correct = sum(matrix[i][i] for i in range(len(matrix)))
    metrics["accuracy_ci95"] = wilson_interval(correct, total)
    for i, name in enumerate(metrics["class_names"]):
        metrics["per_class"][name]["recall_ci95"] = wilson_interval(matrix[i][i], sum(matrix[i]))
    return metrics
