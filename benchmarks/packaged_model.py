"""The packaged model against the run it was packed from: int8 storage cost and calibration.

Measures, on FER2013 validation and web-photo validation, as `emotion-tf evaluate` does by
default (`--faces auto`: a face crop is used whole, a photo is judged on its largest face):
- accuracy of the run's kept checkpoint (float32) and of the packaged file (int8 weights),
  both with the flip averaging the model ships with, and the largest probability difference;
- expected calibration error (10 bins) without temperature scaling and with the packaged
  temperature, and a reliability diagram of both (`--figure`).

    python -m benchmarks.packaged_model --run /work/runs/fer-last-s1337 \
        --fer ../shared/data/fer2013-happy-sad --web ../shared/data/web-happy-sad \
        --figure docs/images/reliability.png
"""

from __future__ import annotations

import sys
from pathlib import Path

from benchmarks.report import Figure, Report, base_parser, log

TARGET_DROP = 0.3  # accuracy points lost to int8 storage


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from emotion_tf.calibration import expected_calibration_error, plot_reliability
    from emotion_tf.evaluate import predict_labelled
    from emotion_tf.packaged import PACKAGED_MODEL_FILE
    from emotion_tf.predictors.outputs import apply_temperature
    from emotion_tf.predictors.resolve import kept_checkpoint, open_checkpoint, open_packaged

    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="the run the packaged file was packed from")
    parser.add_argument("--packaged", default=str(PACKAGED_MODEL_FILE), help="packaged .npz")
    parser.add_argument("--fer", required=True, help="FER2013 data dir (validation/ is used)")
    parser.add_argument("--web", help="web-photo data dir (validation/ is used)")
    parser.add_argument("--figure", help="write the reliability diagram (PNG) here")
    args = parser.parse_args(argv)
    report = Report("packaged_model", args)
    run = Path(args.run)
    checkpoint = open_checkpoint(run, kept_checkpoint(run))
    packaged = open_packaged(Path(args.packaged))
    temperature = packaged.temperature
    packaged.temperature = 1.0  # compare raw probabilities; scaling is applied below
    report.details["temperature"] = temperature
    report.details["calibration"] = packaged.metadata.get("calibration")
    curves = {}
    sets = [("fer", args.fer, "auto")] + ([("web", args.web, "auto")] if args.web else [])
    for name, folder, faces in sets:
        log(f"{name}: predicting {folder} (faces={faces}) with the checkpoint and the package")
        full = predict_labelled(checkpoint, Path(folder), faces=faces)
        small = predict_labelled(packaged, Path(folder), faces=faces)
        labels = small.labels
        accuracy_full = 100 * float(np.mean(full.probabilities.argmax(1) == full.labels))
        accuracy_small = 100 * float(np.mean(small.probabilities.argmax(1) == labels))
        report.add(Figure(f"packaged.{name}.accuracy_float32", accuracy_full, "%"))
        report.add(Figure(f"packaged.{name}.accuracy_int8", accuracy_small, "%"))
        if name == "fer":
            report.add(
                Figure(
                    "packaged.fer.accuracy_drop",
                    accuracy_full - accuracy_small,
                    "points",
                    "<=",
                    TARGET_DROP,
                )
            )
        if len(full.labels) == len(labels):
            diff = float(np.abs(full.probabilities - small.probabilities).max())
            report.add(Figure(f"packaged.{name}.max_prob_diff", diff, ""))
        scaled = apply_temperature(small.probabilities, temperature)
        report.add(
            Figure(
                f"packaged.{name}.ece_raw",
                expected_calibration_error(labels, small.probabilities),
                "",
            )
        )
        report.add(
            Figure(f"packaged.{name}.ece_scaled", expected_calibration_error(labels, scaled), "")
        )
        report.details[f"{name}_count"] = len(labels)
        report.details[f"{name}_skipped"] = len(small.errors)
        label = "FER2013 val" if name == "fer" else "web photos val"
        curves[f"{label}, T=1"] = (labels, small.probabilities)
        curves[f"{label}, T={temperature:.2f}"] = (labels, scaled)
    if args.figure:
        plot_reliability(Path(args.figure), curves)
        log(f"reliability diagram: {args.figure}")
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
