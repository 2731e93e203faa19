"""Benchmark 3: mixed precision (`train.precision`) against float32 training throughput.

One model per policy (float32, mixed_bfloat16, mixed_float16) is built and compiled as the
trainer does, then trained on one in-memory batch in interleaved rounds (order alternating);
the figure is the median per-round speed ratio against float32. The bf16 target (>= 1.5x)
applies where the CPU has avx512_bf16 or AMX, or on a GPU; elsewhere it is reported only.

`--accuracy` also trains the FER recipe (configs/fer2013.yaml, ../shared FER2013 data) once in
float32 and once in mixed_bfloat16 and compares validation accuracy (target: within 0.5
point). That takes as long as two full recipe runs, so it is off by default.

    python -m benchmarks.precision
    python -m benchmarks.precision --sizes fer --accuracy --accuracy-epochs 20
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from benchmarks.images import WorkDir, shared_fer_dir
from benchmarks.machine import has_bf16_cpu
from benchmarks.recipe import FER_RECIPE, TINY, default_config, recipe_config
from benchmarks.report import Figure, Report, base_parser, log
from benchmarks.timing import calibrate, interleaved, median, ratios

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
TARGET_BF16 = 1.5
TARGET_ACCURACY_POINTS = 0.5


def size_configs(args: Any) -> list[tuple[str, Any, int]]:
    """(label, ModelConfig, batch) per size: canonical AlexNet, or the FER recipe's model."""
    result = []
    for label in args.sizes:
        if label == "227":
            result.append(("227px", default_config("model.input_size=227").model, 64))
        elif label == "fer":
            recipe = recipe_config()
            label = f"fer{recipe.model.input_size}px"
            result.append((label, recipe.model, recipe.data.batch_size))
        else:
            raise SystemExit(f"unknown size {label!r}: use 227 and/or fer")
    if args.smoke:
        result = [("smoke32px", default_config(*TINY).model, 8)]
    return result


def build_trainable(config: Any, policy: str, batch: int) -> Any:
    """A compiled model under `policy` and a closure that runs n training steps."""
    import keras
    import numpy as np
    import tensorflow as tf

    from emotion_tf.model.alexnet import build_alexnet

    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        model = build_alexnet(config, 2)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-4),
            loss=keras.losses.CategoricalCrossentropy(),
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    rng = np.random.default_rng(0)
    size, channels = config.input_size, config.channels
    x = tf.constant(rng.integers(0, 256, (batch, size, size, channels)), tf.float32)
    y = tf.one_hot(rng.integers(0, 2, batch), 2)

    def run(steps: int) -> None:
        for _ in range(steps):
            loss = model.train_on_batch(x, y)
        if not np.isfinite(loss):
            raise RuntimeError(f"{policy}: loss is {loss}")

    return model, run


def bench_size(label: str, config: Any, batch: int, args: Any, report: Report) -> None:
    runs = {}
    for policy in args.policies:
        _, runs[policy] = build_trainable(config, policy, batch)
        log(f"{label}: warm-up {policy}")
        runs[policy](args.warmup_steps)
    steps = calibrate(runs["float32"], args.round_seconds, args.steps)
    log(f"{label}: {args.rounds} rounds x {steps} steps per policy")
    times = interleaved({p: (lambda p=p: runs[p](steps)) for p in args.policies}, args.rounds)
    bf16_hardware = has_bf16_cpu() or _has_gpu()
    for policy in args.policies:
        rate = steps * batch / median(t.wall for t in times[policy])
        report.add(Figure(f"precision.{label}.{policy}", rate, "img/s"))
    for policy in args.policies:
        if policy == "float32":
            continue
        speedup = median(ratios(times[policy], times["float32"]))
        if policy == "mixed_bfloat16" and bf16_hardware:
            figure = Figure(
                f"precision.{label}.bf16_vs_fp32",
                speedup,
                "x",
                ">=",
                TARGET_BF16,
                note=f"batch {batch}, median of {args.rounds} interleaved rounds",
            )
        else:
            short = "bf16" if policy == "mixed_bfloat16" else "fp16"
            why = "no bf16 hardware" if short == "bf16" else "no target; CPU has no fast fp16"
            figure = Figure(f"precision.{label}.{short}_vs_fp32", speedup, "x", note=why)
        report.add(figure)
        cpu = median(b.cpu / a.cpu for a, b in zip(times[policy], times["float32"]))
        report.add(
            Figure(
                f"{figure.name}_cpu",
                cpu,
                "x",
                note="float32 CPU seconds / this policy's, per round",
            )
        )
    report.details[label] = {
        "model": vars(config),
        "batch_size": batch,
        "bf16_hardware": bf16_hardware,
        "seconds": {p: [t.wall for t in v] for p, v in times.items()},
        "cpu_seconds": {p: [t.cpu for t in v] for p, v in times.items()},
    }


def _has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def bench_accuracy(args: Any, work: Path, report: Report) -> None:
    """Train the FER recipe in float32 and mixed_bfloat16; compare validation accuracy."""
    import keras

    from emotion_tf.config import load_config
    from emotion_tf.train.trainer import train

    fer = shared_fer_dir()
    if fer is None or not FER_RECIPE.is_file():
        log("accuracy: skipped (needs ../shared FER2013 data and configs/fer2013.yaml)")
        return
    results = {}
    for policy in ("float32", "mixed_bfloat16"):
        overrides = [
            f"data.data_dir={fer}",
            f"train.run_dir={work / ('fer-' + policy)}",
            f"train.precision={policy}",
            "train.verbose=2",
        ]
        if args.accuracy_epochs:
            overrides.append(f"train.epochs={args.accuracy_epochs}")
        log(f"accuracy: training the FER recipe in {policy}")
        result = train(load_config(FER_RECIPE, overrides), export=False)
        keras.mixed_precision.set_global_policy("float32")
        results[policy] = result.metrics
    points = 100 * (results["mixed_bfloat16"]["accuracy"] - results["float32"]["accuracy"])
    for policy, metrics in results.items():
        report.add(
            Figure(
                f"precision.fer_recipe.{policy}_val_accuracy",
                100 * metrics["accuracy"],
                "%",
                note=f"train {metrics.get('train_seconds')} s",
            )
        )
    report.add(
        Figure(
            "precision.fer_recipe.bf16_accuracy_drop",
            -points,
            "points",
            "<=",
            TARGET_ACCURACY_POINTS,
            note="float32 minus mixed_bfloat16 validation accuracy",
        )
    )
    report.details["accuracy"] = results


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["227", "fer"], help="227 and/or fer")
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="min. training steps per round")
    parser.add_argument("--round-seconds", type=float, default=3.0, help="float32 time a round")
    parser.add_argument("--warmup-steps", type=int, default=2)
    parser.add_argument("--accuracy", action="store_true", help="also train the FER recipe 2x")
    parser.add_argument("--accuracy-epochs", type=int, default=0, help="0: the recipe's")
    args = parser.parse_args(argv)
    if "float32" not in args.policies:
        args.policies.insert(0, "float32")
    if args.smoke:
        args.rounds, args.steps, args.warmup_steps, args.round_seconds = 2, 1, 1, 0.0
    report = Report("precision", args)
    for label, config, batch in size_configs(args):
        bench_size(label, config, batch, args, report)
    if args.accuracy:
        with WorkDir(args.work_dir, "bench-precision-") as work:
            bench_accuracy(args, work, report)
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
