"""`emotion-tf evaluate --report FILE.html`: one self-contained page of an evaluation."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from emotion_tf.faces.locate import SOURCE_NAMES
from emotion_tf.pipeline.options import PhotoOptions
from emotion_tf.report import html, plots


def evaluation_page(
    metrics: dict[str, Any],
    found: Any,
    class_names: list[str],
    options: PhotoOptions,
    mistakes_png: bytes | None = None,
) -> str:
    """The page: headline metrics, per-class table, confusion matrix, accuracy against coverage
    (where to set --min-confidence) and, when given, the most confident mistakes."""
    images = [
        (
            "confusion",
            "Confusion matrix",
            plots.confusion_matrix(metrics["confusion_matrix"], class_names),
        ),
    ]
    notes = [f"{metrics['photos']} photo(s) in {metrics['data_dir']}; model {metrics['model']}."]
    if len(found.labels):
        images.append(
            (
                "coverage",
                "Accuracy against coverage",
                plots.risk_coverage_curve(
                    np.asarray(found.labels), np.asarray(found.probabilities), "Abstaining"
                ),
            )
        )
    if mistakes_png is not None:
        images.append(("mistakes", "Most confident mistakes", mistakes_png))
    for route, row in (metrics.get("by_source") or {}).items():
        low, high = row["accuracy_ci95"]
        notes.append(
            f"Read by {SOURCE_NAMES.get(route, route)}: {row['correct']} of {row['files']} right "
            f"({row['accuracy']:.1%}, 95% CI {low:.1%}-{high:.1%})."
        )
    if metrics["skipped_files"]:
        notes.append(f"{metrics['skipped_files']} unreadable file(s), not scored.")
    settings = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
    settings["detector"] = metrics.get("detector", options.detector)
    text = "\n".join(f"{key}: {value}" for key, value in settings.items())
    return html.render(
        f"emotion-tf evaluate {metrics['data_dir']}", metrics, images, text, {}, notes
    )
