"""Benchmark 1: `emotion-tf train` end to end on JPEG files against the same model in memory.

For each size (227 px colour, and the FER recipe's size from configs/fer2013.yaml), the script
writes JPEG files to a temp dir and runs, in alternation:
- the real trainer (`emotion_tf.train.trainer.train`): file scan, tf.data decode/cache/shuffle/
  augment, the configured strategy and precision, validation and every callback;
- the same model and optimizer fed one in-memory batch over and over (no input work at all).
The first epoch of each is warm-up (tracing, cache fill). Throughput is taken over the
training steps of the other epochs; the validation pass and the end-of-epoch callbacks are
reported separately. One more epoch of the real run is traced with the TF profiler to show
where the time goes.

    python -m benchmarks.train_throughput                 # both sizes, a few minutes each
    python -m benchmarks.train_throughput --sizes fer --train-images 12045 --epochs 3
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.images import WorkDir, image_source, make_split_dir
from benchmarks.recipe import FER_FILE_SIZE, FER_RECIPE, TINY, recipe_config
from benchmarks.report import Figure, Report, base_parser, log
from benchmarks.timing import median

TARGET_RATIO = 0.95


@dataclasses.dataclass
class SizeSpec:
    label: str
    config_path: str | None
    overrides: list[str]
    image_size: int  # side of the generated JPEGs
    channels: int
    batch_size: int


def size_specs(args: Any) -> list[SizeSpec]:
    """Canonical AlexNet (built-in defaults) and the FER recipe (configs/fer2013.yaml) as is."""
    specs = []
    for label in args.sizes:
        if label == "227":
            overrides = [
                "model.input_size=227",
                "model.channels=3",
                f"model.width={args.width_227}",
                "data.batch_size=64",
            ]
            specs.append(SizeSpec("227px", None, overrides, args.jpeg_size_227, 3, 64))
        elif label == "fer":
            recipe = recipe_config()
            specs.append(
                SizeSpec(
                    f"fer{recipe.model.input_size}px",
                    str(FER_RECIPE),
                    [],
                    FER_FILE_SIZE,
                    recipe.model.channels,
                    recipe.data.batch_size,
                )
            )
        else:
            raise SystemExit(f"unknown size {label!r}: use 227 and/or fer")
    if args.smoke:
        specs = [SizeSpec("smoke32px", None, [*TINY, "data.batch_size=8"], 40, 3, 8)]
    return specs


def run_trainer(config: Any, profile_dir: Path, profile_steps: tuple[int, int]) -> dict[str, Any]:
    """The real trainer with an epoch timer; the last epoch is profiled."""
    from benchmarks.profiling import EpochTimer, observe_fit, summarize_profile
    from emotion_tf.train.trainer import train

    profile_epoch = config.train.epochs - 1 if profile_steps[1] > profile_steps[0] else None
    timer = EpochTimer(profile_epoch, profile_steps, profile_dir)
    started = time.perf_counter()
    with observe_fit(timer):
        result = train(config, export=False)
    total = time.perf_counter() - started
    profile = summarize_profile(profile_dir) if profile_epoch is not None else {}
    return {
        "timer": timer,
        "total_seconds": total,
        "profile": profile,
        "val_accuracy": result.metrics.get("accuracy"),
    }


def run_in_memory(config: Any, steps: int, epochs: int) -> dict[str, Any]:
    """The same model, optimizer and loss, fed one fixed in-memory batch."""
    import keras
    import numpy as np
    import tensorflow as tf

    from benchmarks.profiling import EpochTimer
    from emotion_tf.model.alexnet import build_alexnet
    from emotion_tf.train.trainer import build_optimizer

    keras.utils.set_random_seed(config.train.seed)
    keras.mixed_precision.set_global_policy(config.train.precision)
    size, channels, batch = config.model.input_size, config.model.channels, config.data.batch_size
    rng = np.random.default_rng(0)
    images = tf.constant(rng.integers(0, 256, (batch, size, size, channels)).astype("float32"))
    labels = tf.one_hot(rng.integers(0, 2, batch), 2)
    dataset = tf.data.Dataset.from_tensors((images, labels)).repeat()
    model = build_alexnet(config.model, 2)
    model.compile(
        optimizer=build_optimizer(config, steps),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.train.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    timer = EpochTimer()
    model.fit(dataset, steps_per_epoch=steps, epochs=epochs, callbacks=[timer], verbose=0)
    keras.mixed_precision.set_global_policy("float32")
    return {"timer": timer}


@contextlib.contextmanager
def augmentation(variant: str) -> Iterator[list[str]]:
    """Config overrides and patches for an augmentation variant.

    'shipped': the package's fused augmenter; 'keras': the first release's chain of Keras
    layers (keras_augment.py) patched into the pipeline; 'none': augmentation switched off.
    """
    if variant == "shipped":
        yield []
    elif variant == "none":
        yield [
            "data.augment.flip=false",
            *(f"data.augment.{k}=0.0" for k in AUGMENT_FACTORS),
        ]
    elif variant == "keras":
        import emotion_tf.data.pipeline as pipeline
        from benchmarks.keras_augment import build_keras_augmenter

        original = pipeline.build_augmenter
        pipeline.build_augmenter = build_keras_augmenter
        try:
            yield []
        finally:
            pipeline.build_augmenter = original
    else:
        raise SystemExit(f"unknown augmentation variant {variant!r}: use shipped, keras or none")


AUGMENT_FACTORS = ("rotation", "zoom", "translation", "brightness", "contrast")


def bench_size(spec: SizeSpec, args: Any, work: Path, report: Report) -> None:
    from benchmarks.profiling import cpu_ms_per_image, images_per_second, profile_lines
    from emotion_tf.config import load_config

    data_dir = work / f"data-{spec.label}"
    log(f"{spec.label}: writing {args.train_images}+{args.val_images} JPEGs ({image_source()})")
    make_split_dir(data_dir, args.train_images, args.val_images, spec.image_size, spec.channels)
    timed_epochs = args.epochs
    profile = 0 if args.no_profile else 1
    steps = args.train_images // spec.batch_size
    batch = spec.batch_size
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in args.augment}
    memory: list[tuple[float, float]] = []  # (img/s, CPU ms/img) of each in-memory run

    def run_memory(config: Any) -> None:
        log(f"{spec.label}: in memory, {steps} steps x (1 + {timed_epochs}) epochs")
        timer = run_in_memory(config, steps, 1 + timed_epochs)["timer"]
        epochs = timer.timed_epochs()
        memory.append((images_per_second(epochs, batch), cpu_ms_per_image(epochs, batch)))

    for round_index in range(args.rounds):
        for variant in args.augment:
            run_dir = work / f"run-{spec.label}-{variant}-{round_index}"
            with augmentation(variant) as augment_overrides:
                overrides = [
                    *spec.overrides,
                    *augment_overrides,
                    f"data.data_dir={data_dir}",
                    f"train.run_dir={run_dir}",
                    f"train.epochs={1 + timed_epochs + profile}",
                    f"train.strategy={args.strategy}",
                    f"train.precision={args.precision}",
                    "train.verbose=0",
                ]
                config = load_config(spec.config_path, overrides)
                if not memory:  # every trainer run sits between two in-memory runs
                    run_memory(config)
                log(f"{spec.label}: round {round_index + 1}: trainer on JPEGs, augment={variant}")
                real = run_trainer(
                    config,
                    work / f"profile-{spec.label}-{variant}-{round_index}",
                    (2, 2 + args.profile_steps) if profile else (0, 0),
                )
            keras_reset_policy()
            run_memory(config)
            timed = real["timer"].timed_epochs()
            real_rate = images_per_second(timed, batch)
            bracket_rate = (memory[-2][0] + memory[-1][0]) / 2
            bracket_cpu = (memory[-2][1] + memory[-1][1]) / 2
            real_cpu = cpu_ms_per_image(timed, batch)
            first = real["timer"].epochs[0]
            results[variant].append(
                {
                    "trainer_steps_rate": real_rate,
                    "trainer_epoch_rate": images_per_second(timed, batch, "epoch"),
                    "in_memory_rate": bracket_rate,
                    "ratio": real_rate / bracket_rate,
                    "trainer_cpu_ms_per_image": real_cpu,
                    "in_memory_cpu_ms_per_image": bracket_cpu,
                    "cpu_ratio": bracket_cpu / real_cpu,
                    "first_epoch_rate": first.steps * batch / first.train_seconds,
                    "validation_seconds": median(e.validation_seconds for e in timed),
                    "callbacks_seconds": median(
                        e.after_steps_seconds - e.validation_seconds for e in timed
                    ),
                    "train_call_seconds": real["total_seconds"],
                    "epochs": [e.to_dict() for e in real["timer"].epochs],
                    "profile": real["profile"],
                }
            )
            for line in profile_lines(real["profile"]) if real["profile"] else []:
                print(f"# {spec.label} augment={variant} {line}", flush=True)

    name = spec.label
    report.add(Figure(f"train.{name}.in_memory", median(m[0] for m in memory), "img/s"))
    for variant, rounds in results.items():
        add_variant_figures(name, variant, rounds, args, steps * batch, report)
    report.details[name] = {
        "config": spec.config_path,
        "overrides": spec.overrides,
        "jpeg_size": spec.image_size,
        "train_images": args.train_images,
        "in_memory_runs": [{"rate": r, "cpu_ms_per_image": c} for r, c in memory],
        "variants": results,
    }


def add_variant_figures(
    name: str,
    variant: str,
    rounds: list[dict[str, Any]],
    args: Any,
    epoch_images: int,
    report: Report,
) -> None:
    prefix = f"train.{name}" if variant == "shipped" else f"train.{name}.augment_{variant}"
    real_rate = median(r["trainer_steps_rate"] for r in rounds)
    report.add(Figure(f"{prefix}.trainer_on_jpegs", real_rate, "img/s"))
    report.add(
        Figure(
            f"{prefix}.trainer_vs_in_memory",
            median(r["ratio"] for r in rounds),
            "ratio",
            ">=",
            TARGET_RATIO,
            note=f"training steps; median of {len(rounds)} bracketed round(s)",
        )
    )
    memory_cpu = median(r["in_memory_cpu_ms_per_image"] for r in rounds)
    trainer_cpu = median(r["trainer_cpu_ms_per_image"] for r in rounds)
    report.add(
        Figure(
            f"{prefix}.trainer_vs_in_memory_cpu",
            median(r["cpu_ratio"] for r in rounds),
            "ratio",
            note=f"CPU ms/img: in memory {memory_cpu:.2f}, trainer {trainer_cpu:.2f}",
        )
    )
    wait = [r["profile"].get("input_wait_share") for r in rounds if r["profile"]]
    wait = [w for w in wait if w is not None]
    if wait:
        shares = [r["profile"]["kernel_share_by_stage"] for r in rounds if r["profile"]]
        augment = median(s.get("augment", 0.0) for s in shares)
        report.add(
            Figure(
                f"{prefix}.step_time_waiting_for_input",
                100 * median(wait),
                "%",
                note=f"TF profiler; augmentation {100 * augment:.1f}% of all kernel CPU time",
            )
        )
    if variant != args.augment[0]:
        return
    # End-of-epoch work (checkpoint, backup, TensorBoard) is a fixed cost per epoch: say what
    # it costs on an epoch of the FER training set's size, where it is amortised.
    overhead = median(r["callbacks_seconds"] for r in rounds)
    fer_epoch_images = 12045
    share_full = 100 * overhead / (fer_epoch_images / real_rate + overhead)
    share_here = 100 * overhead / (epoch_images / real_rate + overhead)
    report.add(
        Figure(
            f"{prefix}.epoch_callbacks",
            overhead,
            "s/epoch",
            note=(
                f"checkpoint+backup+logs; {share_full:.1f}% of an epoch of {fer_epoch_images} "
                f"images, {share_here:.1f}% of this benchmark's {epoch_images}-image epoch"
            ),
        )
    )
    report.add(
        Figure(
            f"{prefix}.validation_pass",
            median(r["validation_seconds"] for r in rounds),
            "s/epoch",
            note=f"{args.val_images} images, not counted as training time",
        )
    )
    report.add(
        Figure(
            f"{prefix}.first_epoch",
            median(r["first_epoch_rate"] for r in rounds),
            "img/s",
            note="decode + cache fill + tracing",
        )
    )


def keras_reset_policy() -> None:
    import keras

    keras.mixed_precision.set_global_policy("float32")


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["227", "fer"], help="227 and/or fer")
    parser.add_argument("--train-images", type=int, default=0, help="0: 640 at 227, 3200 FER")
    parser.add_argument("--val-images", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after 1 warm-up")
    parser.add_argument("--rounds", type=int, default=1, help="trainer runs, each bracketed")
    parser.add_argument("--strategy", default="auto", help="train.strategy for the real run")
    parser.add_argument("--precision", default="float32", help="train.precision for both")
    parser.add_argument(
        "--augment",
        nargs="+",
        default=["shipped"],
        choices=["shipped", "keras", "none"],
        help="augmentation variants: as shipped, the first release's Keras layers, switched off",
    )
    parser.add_argument("--profile-steps", type=int, default=5, help="steps traced")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--width-227", type=float, default=1.0, help="model.width at 227 px")
    parser.add_argument("--jpeg-size-227", type=int, default=256, help="JPEG side for 227 px")
    args = parser.parse_args(argv)
    if args.smoke:
        args.val_images, args.epochs, args.profile_steps = 8, 1, 1
    report = Report("train_throughput", args)
    with WorkDir(args.work_dir, "bench-train-") as work:
        for spec in size_specs(args):
            saved = args.train_images
            if not args.train_images:
                args.train_images = 32 if args.smoke else 640 if spec.label == "227px" else 3200
            bench_size(spec, args, work, report)
            args.train_images = saved
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
