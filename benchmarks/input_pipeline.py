"""Benchmark 5: the training input pipeline alone, against the model's consumption rate.

Two cases, as in the issue: 48 px grayscale JPEGs into the FER recipe's model, and 300 px colour
JPEGs into the 227 px AlexNet. For each, the script times `build_dataset(training=True)` with no
model attached (the first epoch decodes the files and fills the cache; later epochs read the
cache, shuffle, batch and augment), then each stage on its own to show which one limits it:
read, + decode, + resize, cached batches without augmentation, and each augmentation layer.
The model's consumption rate is its in-memory training throughput at the same size and batch.

    python -m benchmarks.input_pipeline
    python -m benchmarks.input_pipeline --cases gray48 --images 12000
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from benchmarks.images import WorkDir, image_source, make_jpegs
from benchmarks.recipe import TINY, default_config, recipe_config
from benchmarks.report import Figure, Report, base_parser, log
from benchmarks.timing import calibrate, median, timed

TARGET_MARGIN = 3.0
AUGMENT_NAMES = ("flip", "rotation", "zoom", "translation", "brightness", "contrast")


@dataclasses.dataclass
class Case:
    label: str
    jpeg_side: int
    config: Any  # emotion_tf.config.Config: the model and pipeline measured
    images: int

    @property
    def input_size(self) -> int:
        return self.config.model.input_size

    @property
    def channels(self) -> int:
        return self.config.model.channels

    @property
    def batch_size(self) -> int:
        return self.config.data.batch_size


def cases(args: Any) -> list[Case]:
    """gray48: the FER recipe on 48 px gray JPEGs; color300: canonical AlexNet on 300 px."""
    result = []
    for label in args.cases:
        if label == "gray48":
            result.append(Case("gray48", 48, recipe_config(), args.images or 4096))
        elif label == "color300":
            config = default_config("model.input_size=227", "data.batch_size=64")
            result.append(Case("color300", 300, config, args.images or 1024))
        else:
            raise SystemExit(f"unknown case {label!r}: use gray48 and/or color300")
    if args.smoke:
        result = [Case("smoke40", 40, default_config(*TINY, "data.batch_size=8"), 64)]
    return result


def drain(dataset: Any) -> int:
    """Iterate a dataset to the end; return how many images went through."""
    count = 0
    for element in dataset:
        first = element[0] if isinstance(element, tuple) else element
        count += int(first.shape[0])
    return count


def stage_datasets(paths: list[str], case: Case, config: Any) -> dict[str, Any]:
    """Each stage of the pipeline on its own, batched so Python iteration costs nothing."""
    import tensorflow as tf

    from emotion_tf.data.augment import build_augmenter
    from emotion_tf.preprocess import bytes_to_model_input, decode_image

    autotune = tf.data.AUTOTUNE
    files = tf.data.Dataset.from_tensor_slices(tf.constant(paths))
    size, channels, batch = case.input_size, case.channels, case.batch_size

    def batched(dataset: Any) -> Any:
        return dataset.batch(batch).prefetch(autotune)

    stages = {
        "read": batched(files.map(tf.io.read_file, num_parallel_calls=autotune)),
        "read+decode": batched(
            files.map(
                lambda p: tf.reduce_max(decode_image(tf.io.read_file(p), channels)),
                num_parallel_calls=autotune,
            )
        ),
        "read+decode+resize": batched(
            files.map(
                lambda p: bytes_to_model_input(tf.io.read_file(p), size, channels),
                num_parallel_calls=autotune,
            )
        ),
    }
    # After the cache: decoded uint8 images in memory, batched, each augmentation alone.
    images = list(
        files.map(
            lambda p: bytes_to_model_input(tf.io.read_file(p), size, channels),
            num_parallel_calls=autotune,
        ).batch(batch)
    )
    cached = tf.data.Dataset.from_tensor_slices(tf.concat(images, 0)).cache()
    drain(cached.batch(batch))
    stages["cached batches, no augment"] = (
        cached.shuffle(2048).batch(batch).map(lambda x: tf.cast(x, tf.float32)).prefetch(autotune)
    )
    from benchmarks.keras_augment import build_keras_augmenter

    whole = {
        "all (as shipped)": build_augmenter(config.data.augment),
        "all as Keras layers (first release)": build_keras_augmenter(config.data.augment),
    }
    for name, augmenter in whole.items():
        if augmenter is not None:
            stages[f"cached + {name}"] = augmented(cached, batch, augmenter)
    for name in AUGMENT_NAMES:
        value = getattr(config.data.augment, name)
        if not value:
            continue
        settings: dict[str, Any] = {n: (False if n == "flip" else 0.0) for n in AUGMENT_NAMES}
        settings[name] = value
        augmenter = build_augmenter(dataclasses.replace(config.data.augment, **settings))
        stages[f"cached + {name}"] = augmented(cached, batch, augmenter)
    return stages


def augmented(cached: Any, batch: int, augmenter: Any) -> Any:
    """Shuffled float batches of the cached images through `augmenter`, in parallel."""
    import tensorflow as tf

    return (
        cached.shuffle(2048)
        .batch(batch)
        .enumerate()
        .map(
            lambda index, x: augmenter(tf.cast(x, tf.float32), tf.stack([index, index])),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .prefetch(tf.data.AUTOTUNE)
    )


def model_rate(case: Case, seconds: float) -> tuple[float, float]:
    """In-memory training img/s of the model at this size, and its CPU microseconds/image."""
    import keras
    import numpy as np
    import tensorflow as tf

    from emotion_tf.model.alexnet import build_alexnet

    model = build_alexnet(case.config.model, 2)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    shape = (case.batch_size, case.input_size, case.input_size, case.channels)
    x = tf.constant(rng.integers(0, 256, shape), tf.float32)
    y = tf.one_hot(rng.integers(0, 2, case.batch_size), 2)

    def steps(n: int) -> None:
        for _ in range(n):
            model.train_on_batch(x, y)

    steps(2)
    n = calibrate(steps, seconds, 2)
    result = timed(lambda: steps(n))
    images = n * case.batch_size
    return images / result.wall, 1e6 * result.cpu / images


def bench_case(case: Case, args: Any, work: Path, report: Report) -> None:
    from emotion_tf.data.files import list_split
    from emotion_tf.data.pipeline import build_dataset

    folder = work / case.label
    log(f"{case.label}: writing {case.images} JPEGs of {case.jpeg_side} px ({image_source()})")
    make_jpegs(folder, case.images, case.jpeg_side, case.channels)
    files = list_split(folder)
    config = case.config

    log(f"{case.label}: model consumption rate")
    consumption, model_cpu = model_rate(case, args.model_seconds)
    log(f"{case.label}: build_dataset(training=True), {1 + args.epochs} epochs, no model")
    dataset = build_dataset(files, config, training=True)
    epochs = [timed(lambda: drain(dataset)) for _ in range(1 + args.epochs)]
    n = len(files.paths)
    first_rate = n / epochs[0].wall
    cached_rate = n / median(t.wall for t in epochs[1:])
    first_cpu = 1e6 * epochs[0].cpu / n
    cached_cpu = 1e6 * median(t.cpu for t in epochs[1:]) / n

    log(f"{case.label}: stage by stage")
    stage_rates: dict[str, float] = {}
    stage_cpu: dict[str, float] = {}
    for name, stage in stage_datasets(files.paths, case, config).items():
        drain(stage.take(2))  # warm-up: tracing
        result = timed(lambda stage=stage: drain(stage))
        stage_rates[name] = n / result.wall
        stage_cpu[name] = 1e6 * result.cpu / n

    # Per-image cost of each step: a stage minus the one before it.
    costs = {
        "read": 1 / stage_rates["read"],
        "decode": 1 / stage_rates["read+decode"] - 1 / stage_rates["read"],
        "resize": 1 / stage_rates["read+decode+resize"] - 1 / stage_rates["read+decode"],
    }
    base = 1 / stage_rates["cached batches, no augment"]
    augment_costs = {
        name.split(" + ")[1]: 1 / rate - base
        for name, rate in stage_rates.items()
        if name.startswith("cached + ") and not name.startswith("cached + all")
    }
    # The first epoch decodes and augments; later epochs only augment.
    first_limit = max({**costs, **augment_costs}.items(), key=lambda item: item[1])[0]
    cached_limit = max(augment_costs, key=augment_costs.get) if augment_costs else "cache"

    def note(rate: float, limit: str) -> str:
        if rate >= TARGET_MARGIN * consumption:
            return f"model {consumption:.0f} img/s"
        return f"model {consumption:.0f} img/s; limited by {limit}"

    report.add(Figure(f"input.{case.label}.model_consumption", consumption, "img/s"))
    report.add(
        Figure(
            f"input.{case.label}.first_epoch_vs_model",
            first_rate / consumption,
            "x",
            ">=",
            TARGET_MARGIN,
            note=f"{first_rate:.0f} img/s decode+cache; {note(first_rate, first_limit)}",
        )
    )
    report.add(
        Figure(
            f"input.{case.label}.cached_epochs_vs_model",
            cached_rate / consumption,
            "x",
            ">=",
            TARGET_MARGIN,
            note=f"{cached_rate:.0f} img/s augmented; {note(cached_rate, cached_limit)}",
        )
    )
    report.add(
        Figure(
            f"input.{case.label}.cached_epochs_vs_model_cpu",
            model_cpu / cached_cpu,
            "x",
            note=(
                f"CPU us/img: model {model_cpu:.0f}, pipeline {cached_cpu:.0f} cached, "
                f"{first_cpu:.0f} first epoch"
            ),
        )
    )
    for name, rate in stage_rates.items():
        print(
            f"# {case.label} stage {name:<28} {rate:>9.0f} img/s  "
            f"{stage_cpu[name]:>7.0f} us CPU/img",
            flush=True,
        )
    report.details[case.label] = {
        "case": dataclasses.asdict(case),
        "images": n,
        "model_consumption_rate": consumption,
        "model_cpu_us_per_image": model_cpu,
        "first_epoch_cpu_us_per_image": first_cpu,
        "cached_epoch_cpu_us_per_image": cached_cpu,
        "epoch_seconds": [t.wall for t in epochs],
        "epoch_cpu_seconds": [t.cpu for t in epochs],
        "first_epoch_rate": first_rate,
        "cached_epoch_rate": cached_rate,
        "stage_rates": stage_rates,
        "stage_cpu_us_per_image": stage_cpu,
        "step_cost_us_per_image": {k: 1e6 * v for k, v in costs.items()},
        "augment_cost_us_per_image": {k: 1e6 * v for k, v in augment_costs.items()},
        "first_epoch_limited_by": first_limit,
        "cached_epochs_limited_by": cached_limit,
    }


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=["gray48", "color300"])
    parser.add_argument("--images", type=int, default=0, help="0: 4096 gray48, 1024 color300")
    parser.add_argument("--epochs", type=int, default=2, help="cached epochs timed")
    parser.add_argument("--model-seconds", type=float, default=4.0, help="model rate timing")
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs, args.model_seconds = 1, 0.0
    report = Report("input_pipeline", args)
    with WorkDir(args.work_dir, "bench-input-") as work:
        for case in cases(args):
            bench_case(case, args, work, report)
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
