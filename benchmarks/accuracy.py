"""Benchmark: the FER2013 happy/sad recipe end to end, from a clean run directory.

Trains `configs/fer2013.yaml` on ../shared/data/fer2013-happy-sad/train, then reports on
validation/: accuracy, balanced accuracy, per-class recall, ROC AUC (from the trainer's own
metrics, and again from the exported SavedModel through `evaluate`), and training time.

Training time is the whole `train()` call (data scan, fit, final evaluation, export), in
wall-clock minutes; the 30-minute target is judged on it, so run this on an otherwise idle
machine. Process CPU seconds / 2 / 60 is printed beside it: the minutes two cores would need if
the job had them to itself, a lower bound that stays meaningful on a shared machine.

    python -m benchmarks.accuracy
    python -m benchmarks.accuracy --set train.epochs=5       # a quicker, weaker run
"""

from __future__ import annotations

import datetime
import shutil
import sys
import time
from pathlib import Path

from benchmarks.images import shared_fer_dir
from benchmarks.machine import process_cpu_seconds
from benchmarks.recipe import FER_RECIPE
from benchmarks.report import REPO_ROOT, Figure, Report, base_parser, log

TARGET_ACCURACY = 93.0  # percent, validation
TARGET_SAD_RECALL = 88.0  # percent, validation
TARGET_MINUTES = 30.0  # on a 2-core CPU machine


def clean_run_dir(path: Path | None, overwrite: bool) -> Path:
    """A run directory with nothing in it, so no earlier backup or checkpoint is resumed."""
    if path is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = REPO_ROOT / "runs" / f"accuracy-fer2013-{stamp}"
    if path.exists() and any(path.iterdir()):
        if not overwrite:
            raise SystemExit(f"error: run dir {path} is not empty (pass --overwrite)")
        shutil.rmtree(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=FER_RECIPE, help="recipe YAML")
    parser.add_argument("--data-dir", type=Path, help="default: ../shared/data/fer2013-happy-sad")
    parser.add_argument("--run-dir", type=Path, help="default: runs/accuracy-fer2013-<time>")
    parser.add_argument("--overwrite", action="store_true", help="empty --run-dir first")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, as for `emotion-tf train --set` (repeatable)",
    )
    args = parser.parse_args(argv)

    data_dir = args.data_dir or shared_fer_dir()
    if data_dir is None or not Path(data_dir).is_dir():
        log("needs the FER2013 happy/sad data: ../shared/data/fer2013-happy-sad or --data-dir")
        return 2
    run_dir = clean_run_dir(args.run_dir, args.overwrite)
    report = Report("accuracy", args)

    from emotion_tf.config import load_config
    from emotion_tf.evaluate import evaluate_export
    from emotion_tf.export import LoadedExport
    from emotion_tf.train.trainer import train

    overrides = [
        f"data.data_dir={data_dir}",
        f"train.run_dir={run_dir}",
        *(["train.epochs=1", "model.width=0.0625"] if args.smoke else []),
        *args.overrides,
    ]
    config = load_config(args.config, overrides)
    log(f"training {args.config} -> {run_dir}")
    cpu0, wall0 = process_cpu_seconds(), time.monotonic()
    result = train(config, export=True)
    wall = time.monotonic() - wall0
    cpu = process_cpu_seconds() - cpu0
    metrics = result.metrics

    log("evaluating the exported SavedModel on validation/")
    exported = evaluate_export(LoadedExport(str(result.export_path)), Path(data_dir))
    per_class = metrics["per_class"]
    figures = [
        Figure("fer.val_accuracy", 100 * metrics["accuracy"], "%", ">=", TARGET_ACCURACY),
        Figure("fer.sad_recall", 100 * per_class["sad"]["recall"], "%", ">=", TARGET_SAD_RECALL),
        Figure("fer.happy_recall", 100 * per_class["happy"]["recall"], "%"),
        Figure("fer.balanced_accuracy", 100 * metrics["balanced_accuracy"], "%"),
        Figure(
            "fer.roc_auc",
            metrics["roc_auc"] if metrics["roc_auc"] is not None else float("nan"),
            "",
        ),
        Figure(
            "fer.export_val_accuracy",
            100 * exported["accuracy"],
            "%",
            note="the SavedModel through `emotion-tf evaluate`",
        ),
        Figure(
            "fer.train_wall_minutes",
            wall / 60,
            "min",
            "<=",
            TARGET_MINUTES,
            note="wall clock of the whole train() call; valid on an otherwise idle machine",
        ),
        Figure(
            "fer.train_minutes_2core",
            cpu / 2 / 60,
            "min",
            note="process CPU seconds / 2: a lower bound where other work shares the machine",
        ),
    ]
    for figure in figures:
        report.add(figure)
    report.details.update(
        {
            "config": config.to_dict(),
            "run_dir": str(run_dir),
            "export": str(result.export_path),
            "train_cpu_seconds": round(cpu, 1),
            "train_wall_seconds": round(wall, 1),
            "fit_seconds": metrics.get("train_seconds"),
            "metrics": metrics,
            "export_metrics": {k: v for k, v in exported.items() if k != "errors"},
        }
    )
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
