"""Evaluate an export on a folder of class sub-folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emotion_tf.data.files import discover_classes, list_split
from emotion_tf.errors import DataError
from emotion_tf.export import LoadedExport
from emotion_tf.metrics import classification_metrics
from emotion_tf.predict import predict_paths


def resolve_eval_dir(data_dir: Path) -> Path:
    """`data_dir/validation` if `data_dir` is a data dir with splits, else `data_dir` itself."""
    data_dir = Path(data_dir)
    if (data_dir / "validation").is_dir() and (data_dir / "train").is_dir():
        return data_dir / "validation"
    return data_dir


def evaluate_export(model: LoadedExport, data_dir: Path, batch_size: int = 64) -> dict[str, Any]:
    """Metrics of `model` on the images of `data_dir` (its validation split if it has one)."""
    folder = resolve_eval_dir(data_dir)
    found = discover_classes(folder)
    unknown = sorted(set(found) - set(model.class_names))
    if unknown:
        raise DataError(
            f"class folders {unknown} in {folder} are not classes of the model "
            f"({model.class_names})"
        )
    present = [name for name in model.class_names if name in found]
    files = list_split(folder, present)
    index_of = {name: model.class_names.index(name) for name in present}
    labels, probabilities, errors = [], [], []
    for row, label in zip(predict_paths(model, files.paths, batch_size), files.labels):
        if row.error:
            errors.append({"path": row.path, "error": row.error})
            continue
        labels.append(index_of[present[label]])
        probabilities.append([row.probabilities[name] for name in model.class_names])
    if not labels:
        raise DataError(f"no image in {folder} could be evaluated")
    metrics = classification_metrics(np.array(labels), np.array(probabilities), model.class_names)
    metrics.update(
        {
            "data_dir": str(folder),
            "model": str(model.path),
            "errors": errors,
            "skipped_files": len(errors),
        }
    )
    return metrics
