"""TFLite beside the SavedModel: batch-1 latency, and accuracy of each quantization.

For one model (default: the packaged model; or a run directory or packaged .npz via --model)
the script writes the SavedModel export and the .tflite files (float32, float16, int8) of the
same weights, then measures in one process:
- single-image latency, p50 and p99, of each on a ready uint8 image of the model's input size
  (the SavedModel's `serving_images` signature; the TFLite interpreter), calls interleaved;
- with --data, accuracy of each on a labelled folder (its validation split) through
  `emotion_tf.evaluate.evaluate_export`, and each TFLite file's largest probability difference
  from the SavedModel on those images.

    python -m benchmarks.tflite --data ../shared/data/fer2013-happy-sad
    python -m benchmarks.tflite --model runs/fer2013 --calls 300
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.images import WorkDir
from benchmarks.report import Figure, Report, base_parser, log
from benchmarks.timing import percentile

MODES = ("none", "float16", "int8")
TARGET_INT8_DROP = 1.0  # accuracy points
TARGET_FLOAT32_DIFF = 1e-4


def _smoke_source(work: Path) -> Path:
    """A packaged .npz of an untrained 32 px AlexNet (speed and plumbing only)."""
    from emotion_tf.config import load_config
    from emotion_tf.model.alexnet import build_alexnet
    from emotion_tf.packaged.archive import write_packaged

    config = load_config(
        extra={"model": {"input_size": 32, "width": 0.0625, "test_time_flip": True}}
    )
    path = work / "smoke.npz"
    model = build_alexnet(config.model, 2)
    write_packaged(path, model, {"config": config.to_dict(), "class_names": ["happy", "sad"]})
    return path


def _probabilities(model: Any, folder: Path) -> Any:
    import numpy as np

    from emotion_tf.evaluate import predict_labelled

    found = predict_labelled(model, folder)
    return np.asarray(found.probabilities)


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="run directory or packaged .npz (default: packaged)")
    parser.add_argument("--data", help="labelled folder for accuracy (its validation split)")
    parser.add_argument("--calls", type=int, default=200, help="single-image calls per model")
    args = parser.parse_args(argv)
    if args.smoke:
        args.calls = 8
    report = Report("tflite", args)
    with WorkDir(args.work_dir, "bench-tflite-") as work:
        from emotion_tf.export import LoadedExport, export_model
        from emotion_tf.packaged import PACKAGED_MODEL_FILE
        from emotion_tf.predictors.tflite_model import TFLitePredictor
        from emotion_tf.tflite.source import export_tflite, load_source

        source_path = _smoke_source(work) if args.smoke else Path(args.model or PACKAGED_MODEL_FILE)
        source = load_source(source_path)
        log(f"model {source_path}: exporting a SavedModel and {len(MODES)} .tflite files")
        saved = LoadedExport(
            export_model(
                source.model,
                work / "export",
                source.class_names,
                warmup=False,
                test_time_flip=source.test_time_flip,
            )
        )
        saved_model_temperature = source.temperature
        models: dict[str, Any] = {"savedmodel": saved}
        for mode in MODES:
            path = export_tflite(source_path, work / f"model-{mode}.tflite", quantize=mode)
            models[f"tflite_{mode}"] = TFLitePredictor(path)
            report.details[f"tflite_{mode}_bytes"] = path.stat().st_size
        size, channels = saved.input_size, saved.channels
        image = np.random.default_rng(0).integers(0, 256, (1, size, size, channels), np.uint8)
        for model in models.values():  # warm-up: tracing, allocation
            for _ in range(3):
                model.predict_images(image)
        log(f"{args.calls} single-image calls each, interleaved")
        samples: dict[str, list[float]] = {name: [] for name in models}
        names = list(models)
        cpu = {name: 0.0 for name in models}
        for index in range(args.calls):
            for name in names[index % len(names) :] + names[: index % len(names)]:
                started, cpu_started = time.perf_counter(), time.process_time()
                models[name].predict_images(image)
                samples[name].append(time.perf_counter() - started)
                cpu[name] += time.process_time() - cpu_started
        for name in names:
            report.add(Figure(f"tflite.{name}.b1_p50", 1000 * percentile(samples[name], 50), "ms"))
            report.add(Figure(f"tflite.{name}.b1_p99", 1000 * percentile(samples[name], 99), "ms"))
            report.add(Figure(f"tflite.{name}.b1_cpu", 1000 * cpu[name] / args.calls, "ms"))
        if args.data:
            from emotion_tf.evaluate import evaluate_export
            from emotion_tf.predictors.outputs import apply_temperature

            folder = Path(args.data)
            reference = apply_temperature(_probabilities(saved, folder), saved_model_temperature)
            accuracy = {}
            for name, model in models.items():
                metrics = evaluate_export(model, folder)
                accuracy[name] = 100 * metrics["accuracy"]
                report.details[f"{name}_metrics"] = metrics
            # The SavedModel export has no temperature; accuracy does not depend on it.
            report.add(Figure("tflite.savedmodel.accuracy", accuracy["savedmodel"], "%"))
            for mode in MODES:
                name = f"tflite_{mode}"
                diff = float(np.abs(_probabilities(models[name], folder) - reference).max())
                report.add(Figure(f"tflite.{name}.accuracy", accuracy[name], "%"))
                report.add(
                    Figure(
                        f"tflite.{name}.max_prob_diff_vs_savedmodel",
                        diff,
                        "",
                        "<=" if mode == "none" else "",
                        TARGET_FLOAT32_DIFF if mode == "none" else None,
                    )
                )
            drop = accuracy["savedmodel"] - accuracy["tflite_int8"]
            report.add(Figure("tflite.int8.accuracy_drop", drop, "points", "<=", TARGET_INT8_DROP))
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
