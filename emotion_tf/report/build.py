"""Write a run's report: PNG figures and one self-contained report.html in RUN_DIR/report/."""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
from pathlib import Path
from typing import Any

from emotion_tf.io_utils import atomic_write_bytes, atomic_write_text
from emotion_tf.report import html
from emotion_tf.run_dir import RunDir

log = logging.getLogger(__name__)

CURVES_PNG = "curves.png"
CONFUSION_PNG = "confusion_matrix.png"
ROC_PNG = "roc_curve.png"
COVERAGE_PNG = "accuracy_coverage.png"
MISTAKES_PNG = "mistakes.png"
HTML_FILE = "report.html"
PREDICTIONS_CSV = "validation_predictions.csv"


@dataclasses.dataclass
class Report:
    directory: Path
    files: list[Path]
    notes: list[str]

    @property
    def html(self) -> Path:
        return self.directory / HTML_FILE


def build_report(
    run_dir: Path,
    model: Any = None,
    validation: Any = None,
    out_dir: Path | None = None,
    data_dir: Path | None = None,
    mistakes: int = 16,
) -> Report:
    """Figures and report.html for the finished run in `run_dir`.

    `model` defaults to the run's kept checkpoint and `validation` to the run's validation split
    (found through run_info.json's data_dir, or `data_dir`). Numbers shown come from
    metrics.json; the ROC curve and the mistakes come from predicting the validation split.
    """
    from emotion_tf.report import plots  # matplotlib: imported only when a report is made

    run = RunDir(run_dir)
    metrics = run.load_metrics()
    config = run.load_config()
    history = run.load_history()
    run_info = run.load_run_info()
    class_names = list(metrics["class_names"])
    out = Path(out_dir) if out_dir else run.report_dir
    notes: list[str] = []
    images: list[tuple[str, str, bytes]] = []

    if history:
        images.append(("curves", "Loss and accuracy", plots.training_curves(history)))
    else:
        notes.append("history.json is missing or empty: no training curves.")
    images.append(
        (
            "confusion",
            "Confusion matrix",
            plots.confusion_matrix(metrics["confusion_matrix"], class_names),
        )
    )

    predictions = None
    try:
        if model is None:
            model = run.load_model(config)
        if validation is None:
            from emotion_tf.report.predictions import validation_split

            validation = validation_split(config, run_info, data_dir)
        from emotion_tf.evaluate import predict_split  # TensorFlow: only when predicting

        predictions = predict_split(
            model, validation, config, flip=config.model.test_time_flip, keep_mistakes=mistakes
        )
    except Exception as err:  # the rest of the report is still worth writing
        log.warning("report: no validation predictions (%s: %s)", type(err).__name__, err)
        notes.append(
            f"Validation predictions unavailable ({type(err).__name__}: {err}); the ROC curve "
            "and the mistakes grid are left out."
        )
    if predictions is not None:
        accuracy = predictions.accuracy
        if (
            len(predictions.labels) != metrics.get("count")
            or abs(accuracy - metrics.get("accuracy", accuracy)) > 1e-6
        ):
            notes.append(
                f"Recomputed validation predictions ({len(predictions.labels)} images, accuracy "
                f"{accuracy:.4f}) differ from metrics.json ({metrics.get('count')} images, "
                f"accuracy {metrics.get('accuracy', 0):.4f}): the data or model changed since "
                "training. Figures below use the recomputed predictions."
            )
        images.append(
            (
                "roc",
                "ROC curve",
                plots.roc_curve(predictions.labels, predictions.probabilities, class_names),
            )
        )
        images.append(
            (
                "coverage",
                "Accuracy against coverage",
                plots.risk_coverage_curve(
                    predictions.labels, predictions.probabilities, "Abstaining (validation)"
                ),
            )
        )
        paths = _paths_of(validation, len(predictions.labels))
        captions = [
            f"{_short_name(paths, m.position)}\ntrue {class_names[m.true_index]}, "
            f"predicted {class_names[m.predicted_index]} {m.confidence:.2f}"
            for m in predictions.mistakes
        ]
        images.append(
            (
                "mistakes",
                "Most confident mistakes",
                plots.image_grid(
                    [m.image for m in predictions.mistakes],
                    captions,
                    "Most confident mistakes (validation, as the model sees them)",
                ),
            )
        )

    names = {
        "curves": CURVES_PNG,
        "confusion": CONFUSION_PNG,
        "roc": ROC_PNG,
        "coverage": COVERAGE_PNG,
        "mistakes": MISTAKES_PNG,
    }
    files = []
    for key, _, png in images:
        atomic_write_bytes(out / names[key], png)
        files.append(out / names[key])
    if predictions is not None:
        files.append(
            _write_predictions(
                out / PREDICTIONS_CSV,
                predictions,
                class_names,
                _paths_of(validation, len(predictions.labels)),
            )
        )
    title = f"emotion-tf run {run.path.resolve().name}"
    page = html.render(title, metrics, images, config.to_yaml(), run_info, notes)
    atomic_write_text(out / HTML_FILE, page)
    files.append(out / HTML_FILE)
    return Report(out, files, notes)


def _paths_of(split: Any, count: int) -> list[str] | None:
    """File paths of a folder split in prediction order (None for TFRecords, or if a file
    broke since the scan and the order no longer lines up)."""
    paths = getattr(split, "paths", None)
    return list(paths) if paths is not None and len(paths) == count else None


def _short_name(paths: list[str] | None, position: int, width: int = 24) -> str:
    if paths is None:
        return f"example #{position}"
    name = Path(paths[position]).name
    return name if len(name) <= width else "..." + name[-(width - 3) :]


def _write_predictions(
    path: Path, predictions: Any, class_names: list[str], paths: list[str] | None
) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["position", "path", "true", "predicted", "confidence", *class_names])
    for i, (label, probs) in enumerate(zip(predictions.labels, predictions.probabilities)):
        best = int(probs.argmax())
        writer.writerow(
            [
                i,
                paths[i] if paths else "",
                class_names[int(label)],
                class_names[best],
                f"{probs[best]:.6f}",
                *[f"{p:.6f}" for p in probs],
            ]
        )
    atomic_write_text(path, buffer.getvalue())
    return path


def report_after_training(run_dir: Path, model: Any, validation: Any) -> Report | None:
    """`build_report` for the end of `train`: a failure is logged, never raised."""
    try:
        report = build_report(run_dir, model=model, validation=validation)
    except Exception as err:
        log.warning(
            "could not write the run report (%s: %s); training results are unaffected. "
            "Retry with: emotion-tf report %s",
            type(err).__name__,
            err,
            run_dir,
        )
        return None
    log.info("report: %s", report.html)
    return report
