"""Benchmark 4: the SavedModel export and `emotion-tf predict` against the bare Keras model.

For each size (227 px colour, the FER recipe's size) the script builds AlexNet (weights do not
change speed), exports it with `emotion_tf.export.export_model`, loads it with `LoadedExport`
and measures, in one process:
- single-image latency, p50 and p99, of the export's `serving_default` (encoded JPEG bytes in,
  decode + resize + model + label out) and `serving_images` (uint8 pixels in) against a bare
  forward pass of the in-memory model on a ready float32 tensor, calls interleaved one by one;
- folder throughput of `predict_paths` (what `emotion-tf predict` runs) over N JPEG files,
  against the bare batch-64 forward rate measured just before and just after;
- the `emotion-tf predict` command itself on N files and on 64 files (start-up included; the
  difference gives its rate per file once started).

    python -m benchmarks.predict_latency
    python -m benchmarks.predict_latency --sizes 227 --files 2000 --calls 500
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.images import WorkDir, image_source, make_jpegs
from benchmarks.recipe import FER_FILE_SIZE, TINY, default_config, recipe_config
from benchmarks.report import Figure, Report, base_parser, log
from benchmarks.timing import median, percentile, timed

TARGET_LATENCY = 1.2
TARGET_FOLDER = 0.8


def size_specs(args: Any) -> list[tuple[str, Any, int]]:
    """(label, ModelConfig, JPEG side) per size: canonical AlexNet, or the FER recipe's model."""
    result = []
    for label in args.sizes:
        if label == "227":
            config = default_config("model.input_size=227").model
            result.append(("227px", config, args.jpeg_size_227))
        elif label == "fer":
            model = recipe_config().model
            result.append((f"fer{model.input_size}px", model, FER_FILE_SIZE))
        else:
            raise SystemExit(f"unknown size {label!r}: use 227 and/or fer")
    if args.smoke:
        result = [("smoke32px", default_config(*TINY).model, 40)]
    return result


def latency_percentiles(samples: list[float]) -> tuple[float, float]:
    return percentile(samples, 50), percentile(samples, 99)


def bench_size(label: str, config: Any, jpeg_side: int, args: Any, work: Path, report: Report):
    import numpy as np
    import tensorflow as tf

    from emotion_tf.export import LoadedExport, export_model
    from emotion_tf.model.alexnet import build_alexnet
    from emotion_tf.predict import predict_paths

    size, channels = config.input_size, config.channels
    model = build_alexnet(config, 2)
    flip = bool(getattr(config, "test_time_flip", False))
    export_path = export_model(
        model, work / f"export-{label}", ["happy", "sad"], test_time_flip=flip
    )
    loaded = LoadedExport(export_path)
    folder = work / f"images-{label}"
    log(f"{label}: writing {args.files} JPEGs of {jpeg_side} px ({image_source()})")
    paths = make_jpegs(folder, args.files, jpeg_side, channels)
    blob = paths[0].read_bytes()
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (1, size, size, channels)).astype("uint8")
    x1 = tf.constant(pixels, tf.float32)
    x64 = tf.constant(rng.integers(0, 256, (64, size, size, channels)), tf.float32)

    @tf.function
    def forward(x: tf.Tensor) -> tf.Tensor:
        """The model alone; with test-time flip, twice, as the export does."""
        probabilities = model(x, training=False)
        if flip:
            probabilities = (probabilities + model(tf.reverse(x, axis=[2]), training=False)) / 2
        return probabilities

    calls = {
        "bare_forward": lambda: forward(x1).numpy(),
        "serving_default_bytes": lambda: loaded.predict_bytes([blob]),
        "serving_images_uint8": lambda: loaded.predict_images(pixels),
    }
    for fn in calls.values():  # warm-up: tracing, first allocations
        for _ in range(3):
            fn()
    log(f"{label}: {args.calls} single-image calls each, interleaved")
    samples: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for index in range(args.calls):
        order = names[index % len(names) :] + names[: index % len(names)]
        for name in order:
            started = time.perf_counter()
            calls[name]()
            samples[name].append(time.perf_counter() - started)
    bare50, bare99 = latency_percentiles(samples["bare_forward"])
    report.add(Figure(f"predict.{label}.bare_forward_p50", 1000 * bare50, "ms"))
    report.add(Figure(f"predict.{label}.bare_forward_p99", 1000 * bare99, "ms"))
    for name in ("serving_default_bytes", "serving_images_uint8"):
        p50, p99 = latency_percentiles(samples[name])
        short = "bytes" if "bytes" in name else "uint8"
        report.add(
            Figure(
                f"predict.{label}.savedmodel_{short}_p50_vs_bare",
                p50 / bare50,
                "x",
                "<=",
                TARGET_LATENCY,
                note=f"{1000 * p50:.2f} ms",
            )
        )
        report.add(
            Figure(
                f"predict.{label}.savedmodel_{short}_p99_vs_bare",
                p99 / bare99,
                "x",
                "<=",
                TARGET_LATENCY,
                note=f"{1000 * p99:.2f} ms",
            )
        )

    # Folder throughput: the files in chunks, each chunk's predict_paths run alternating with
    # bare batch-64 forward passes over as many images (ABBA order), one ratio per chunk.
    forward(x64).numpy()
    chunks = max(1, min(args.chunks, len(paths) // 64))
    size_of = -(-len(paths) // chunks)
    rows: list[Any] = []
    predict_times, forward_times, chunk_sizes = [], [], []
    log(f"{label}: predict_paths over {len(paths)} files in {chunks} interleaved chunks")
    for index in range(chunks):
        chunk = [str(p) for p in paths[index * size_of : (index + 1) * size_of]]
        batches = -(-len(chunk) // 64)

        def run_predict(chunk: list[str] = chunk) -> None:
            rows.extend(predict_paths(loaded, chunk, batch_size=64))

        def run_forward(batches: int = batches) -> None:
            for _ in range(batches):
                forward(x64).numpy()

        order = [run_predict, run_forward] if index % 2 == 0 else [run_forward, run_predict]
        results = {fn: timed(fn) for fn in order}
        predict_times.append(results[run_predict])
        forward_times.append(results[run_forward])
        chunk_sizes.append((len(chunk), batches * 64))
    errors = sum(1 for row in rows if row.error)
    predict_rates = [n / t.wall for (n, _), t in zip(chunk_sizes, predict_times)]
    forward_rates = [m / t.wall for (_, m), t in zip(chunk_sizes, forward_times)]
    ratio = median(p / f for p, f in zip(predict_rates, forward_rates))
    predict_cpu = 1e6 * sum(t.cpu for t in predict_times) / sum(n for n, _ in chunk_sizes)
    forward_cpu = 1e6 * sum(t.cpu for t in forward_times) / sum(m for _, m in chunk_sizes)
    bare_rate = median(forward_rates)
    report.add(Figure(f"predict.{label}.bare_forward_b64", bare_rate, "img/s"))
    report.add(
        Figure(
            f"predict.{label}.predict_paths_folder",
            median(predict_rates),
            "img/s",
            note=f"{len(rows)} files, {errors} errors",
        )
    )
    report.add(
        Figure(
            f"predict.{label}.predict_paths_vs_forward_b64",
            ratio,
            "ratio",
            ">=",
            TARGET_FOLDER,
            note=f"median of {chunks} interleaved chunks",
        )
    )
    report.add(
        Figure(
            f"predict.{label}.predict_paths_vs_forward_b64_cpu",
            forward_cpu / predict_cpu,
            "ratio",
            note=f"CPU us/img: forward {forward_cpu:.0f}, predict_paths {predict_cpu:.0f}",
        )
    )
    details: dict[str, Any] = {
        "model": vars(config),
        "jpeg_side": jpeg_side,
        "files": len(paths),
        "latency_ms": {
            name: {
                "p50": 1000 * percentile(values, 50),
                "p90": 1000 * percentile(values, 90),
                "p99": 1000 * percentile(values, 99),
            }
            for name, values in samples.items()
        },
        "chunks": [
            {"files": n, "predict_rate": p, "forward_rate": f}
            for (n, _), p, f in zip(chunk_sizes, predict_rates, forward_rates)
        ],
        "predict_paths_cpu_us_per_file": predict_cpu,
        "forward_cpu_us_per_image": forward_cpu,
    }
    if not args.no_cli:
        details["cli"] = bench_cli(
            label, export_path, folder, paths, (bare_rate, forward_cpu), work, report
        )
    report.details[label] = details


def bench_cli(
    label: str,
    export_path: Path,
    folder: Path,
    paths: list[Path],
    forward: tuple[float, float],
    work: Path,
    report: Report,
) -> dict[str, Any]:
    """`emotion-tf predict` as a user runs it: start-up, then files per second.

    `--faces none` (classify each file whole) on 64 files and on the folder: the difference is
    the rate once started. Then the default (`--faces auto`, which runs the face detector on
    every image) on the folder, with the same start-up subtracted.
    """
    bare_rate, forward_cpu = forward  # img/s and CPU us/img of the bare batch-64 forward pass
    small = work / f"images-{label}-small"
    small.mkdir(exist_ok=True)
    for path in paths[:64]:
        target = small / path.name
        if not target.exists():
            os.link(path, target)
    script = Path(sys.executable).parent / "emotion-tf"
    launcher = [str(script)] if script.is_file() else [sys.executable, "-m", "emotion_tf.cli"]
    command = [*launcher, "predict", "-m", str(export_path)]
    runs = (
        ("small", small, 64, ["--faces", "none"]),
        ("full", folder, len(paths), ["--faces", "none"]),
        ("full_default", folder, len(paths), []),
    )
    times, cpu = {}, {}
    for name, target, count, extra in runs:
        log(f"{label}: emotion-tf predict {' '.join(extra) or '(defaults)'} on {count} files")
        started, cpu_started = time.perf_counter(), _children_cpu()
        done = subprocess.run(
            [*command, str(target), "--format", "csv", *extra], capture_output=True, text=True
        )
        times[name] = time.perf_counter() - started
        cpu[name] = _children_cpu() - cpu_started
        lines = done.stdout.count("\n")
        if done.returncode != 0 or lines < count:
            log(f"{label}: emotion-tf predict failed ({done.returncode}): {done.stderr[-500:]}")
            times[name] = float("nan")
    marginal = (len(paths) - 64) / (times["full"] - times["small"])
    startup = times["small"] - 64 / marginal
    default_rate = len(paths) / (times["full_default"] - startup)
    report.add(
        Figure(
            f"predict.{label}.cli_{len(paths)}_files",
            times["full"],
            "s",
            note=f"--faces none; start-up and model load about {startup:.1f} s",
        )
    )
    report.add(
        Figure(
            f"predict.{label}.cli_rate_vs_forward_b64",
            marginal / bare_rate,
            "ratio",
            ">=",
            TARGET_FOLDER,
            note=f"--faces none: {marginal:.0f} files/s once started",
        )
    )
    cli_cpu = 1e6 * (cpu["full"] - cpu["small"]) / (len(paths) - 64)
    report.add(
        Figure(
            f"predict.{label}.cli_rate_vs_forward_b64_cpu",
            forward_cpu / cli_cpu,
            "ratio",
            note=f"CPU us/file once started: forward {forward_cpu:.0f}, CLI {cli_cpu:.0f}",
        )
    )
    report.add(
        Figure(
            f"predict.{label}.cli_default_faces_auto_vs_forward_b64",
            default_rate / bare_rate,
            "ratio",
            note=f"default --faces auto runs the face detector: {default_rate:.0f} files/s",
        )
    )
    return {
        "seconds": times,
        "cpu_seconds": cpu,
        "startup_seconds": startup,
        "files_per_second_after_startup": marginal,
        "default_files_per_second_after_startup": default_rate,
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["227", "fer"], help="227 and/or fer")
    parser.add_argument("--files", type=int, default=2000, help="JPEG files in the folder")
    parser.add_argument("--calls", type=int, default=200, help="single-image calls per path")
    parser.add_argument("--jpeg-size-227", type=int, default=256, help="JPEG side for 227 px")
    parser.add_argument("--chunks", type=int, default=8, help="interleaved predict chunks")
    parser.add_argument("--no-cli", action="store_true", help="skip the emotion-tf subprocess")
    args = parser.parse_args(argv)
    if args.smoke:
        args.files, args.calls = 96, 8
    report = Report("predict_latency", args)
    with WorkDir(args.work_dir, "bench-predict-") as work:
        for label, config, side in size_specs(args):
            bench_size(label, config, side, args, work, report)
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
