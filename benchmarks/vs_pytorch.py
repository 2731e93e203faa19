"""Benchmark 2: Keras/TensorFlow AlexNet against the same layers in PyTorch, interleaved A/B.

Both frameworks get the same layer sizes, batch, input size, optimizer (Adam) and loss, fed one
in-memory batch, in one process on the same cores. Each round times a few training steps (and
then inference batches) in one framework, then the other, alternating which goes first; the
figure is the median over rounds of the per-round speed ratio TF / PyTorch.

Needs the optional extra: `pip install -e .[bench]` (torch==2.13.0, CPU wheel).

    python -m benchmarks.vs_pytorch                      # 227 px and the FER recipe's size
    python -m benchmarks.vs_pytorch --sizes 227 --rounds 9
"""

from __future__ import annotations

import sys
from typing import Any

from benchmarks.recipe import TINY, default_config, recipe_config
from benchmarks.report import Figure, Report, base_parser, log
from benchmarks.timing import calibrate, interleaved, median, ratios

TARGET_TRAIN = 1.5
TARGET_INFER = 1.3


def size_configs(args: Any) -> list[tuple[str, Any]]:
    """(label, ModelConfig) per size: canonical AlexNet, or the FER recipe's model."""
    result = []
    for label in args.sizes:
        if label == "227":
            result.append(("227px", default_config("model.input_size=227").model))
        elif label == "fer":
            model = recipe_config().model
            result.append((f"fer{model.input_size}px", model))
        else:
            raise SystemExit(f"unknown size {label!r}: use 227 and/or fer")
    if args.smoke:
        result = [("smoke32px", default_config(*TINY).model)]
    return result


class KerasSide:
    def __init__(self, config: Any, batch: int, learning_rate: float):
        import keras
        import numpy as np
        import tensorflow as tf

        from emotion_tf.model.alexnet import build_alexnet

        keras.utils.set_random_seed(0)
        self.model = build_alexnet(config, 2)
        self.model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=keras.losses.CategoricalCrossentropy(),
        )
        rng = np.random.default_rng(0)
        size, channels = config.input_size, config.channels
        self.x = tf.constant(rng.integers(0, 256, (batch, size, size, channels)), tf.float32)
        self.y = tf.one_hot(rng.integers(0, 2, batch), 2)
        self.x1 = self.x[:1]
        self.forward = tf.function(lambda x: self.model(x, training=False))
        self.trainable = sum(int(np.prod(w.shape)) for w in self.model.trainable_weights)

    def train(self, steps: int) -> None:
        for _ in range(steps):
            self.model.train_on_batch(self.x, self.y)

    def infer(self, batches: int, single: bool = False) -> None:
        x = self.x1 if single else self.x
        for _ in range(batches):
            self.forward(x).numpy()


class TorchSide:
    def __init__(self, config: Any, batch: int, learning_rate: float, channels_last: bool):
        import numpy as np
        import torch

        from benchmarks.torch_alexnet import torch_alexnet, trainable_parameters

        torch.manual_seed(0)
        self.torch = torch
        self.model = torch_alexnet(config, 2)
        rng = np.random.default_rng(0)
        size, channels = config.input_size, config.channels
        x = rng.integers(0, 256, (batch, channels, size, size)).astype("float32")
        self.x = torch.from_numpy(x)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.y = torch.from_numpy(rng.integers(0, 2, batch))
        self.x1 = self.x[:1].clone()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=learning_rate)
        self.loss = torch.nn.CrossEntropyLoss()
        self.trainable = trainable_parameters(self.model)

    def train(self, steps: int) -> None:
        self.model.train()
        for _ in range(steps):
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(self.model(self.x), self.y)
            loss.backward()
            self.optimizer.step()
        loss.detach().item()

    def infer(self, batches: int, single: bool = False) -> None:
        self.model.eval()
        x = self.x1 if single else self.x
        with self.torch.inference_mode():
            for _ in range(batches):
                self.model(x).sum().item()


def bench_size(label: str, config: Any, args: Any, report: Report) -> None:
    import torch

    batch = args.batch_size
    log(f"{label}: building both models")
    keras_side = KerasSide(config, batch, args.learning_rate)
    torch_side = TorchSide(config, batch, args.learning_rate, args.channels_last)
    if keras_side.trainable != torch_side.trainable:
        log(
            f"{label}: WARNING trainable parameters differ: Keras {keras_side.trainable:,}, "
            f"PyTorch {torch_side.trainable:,}"
        )
    log(f"{label}: warm-up")
    for side in (keras_side, torch_side):
        side.train(args.warmup_steps)
        side.infer(args.warmup_steps)
        side.infer(args.warmup_steps, single=True)
    steps = calibrate(keras_side.train, args.round_seconds, args.train_steps)
    batches = calibrate(keras_side.infer, args.round_seconds / 2, args.infer_batches)
    singles = calibrate(
        lambda n: keras_side.infer(n, single=True), args.round_seconds / 4, args.single_calls
    )
    log(f"{label}: {args.rounds} rounds x {steps} training steps per framework")
    train = interleaved(
        {"keras": lambda: keras_side.train(steps), "torch": lambda: torch_side.train(steps)},
        args.rounds,
    )
    log(f"{label}: {args.rounds} rounds x {batches} inference batches of {batch}")
    infer = interleaved(
        {"keras": lambda: keras_side.infer(batches), "torch": lambda: torch_side.infer(batches)},
        args.rounds,
    )
    single = interleaved(
        {
            "keras": lambda: keras_side.infer(singles, single=True),
            "torch": lambda: torch_side.infer(singles, single=True),
        },
        args.rounds,
    )

    def rate(times: list, work: int) -> float:
        return work / median(t.wall for t in times)

    train_ratio = median(ratios(train["keras"], train["torch"]))
    infer_ratio = median(ratios(infer["keras"], infer["torch"]))
    single_ratio = median(ratios(single["keras"], single["torch"]))
    report.add(
        Figure(
            f"torch.{label}.keras_train",
            rate(train["keras"], steps * batch),
            "img/s",
        )
    )
    report.add(
        Figure(
            f"torch.{label}.torch_train",
            rate(train["torch"], steps * batch),
            "img/s",
        )
    )
    report.add(
        Figure(
            f"torch.{label}.train_speedup",
            train_ratio,
            "x",
            ">=",
            TARGET_TRAIN,
            note=f"batch {batch}, median of {args.rounds} interleaved rounds",
        )
    )
    report.add(
        Figure(
            f"torch.{label}.train_speedup_cpu",
            median(t.cpu / k.cpu for k, t in zip(train["keras"], train["torch"])),
            "x",
            note="PyTorch CPU seconds / Keras CPU seconds, per round",
        )
    )
    report.add(
        Figure(
            f"torch.{label}.keras_infer_b{batch}",
            rate(infer["keras"], batches * batch),
            "img/s",
        )
    )
    report.add(
        Figure(
            f"torch.{label}.torch_infer_b{batch}",
            rate(infer["torch"], batches * batch),
            "img/s",
        )
    )
    report.add(
        Figure(
            f"torch.{label}.infer_b{batch}_speedup",
            infer_ratio,
            "x",
            ">=",
            TARGET_INFER,
            note=f"median of {args.rounds} interleaved rounds",
        )
    )
    report.add(
        Figure(
            f"torch.{label}.infer_b1_speedup",
            single_ratio,
            "x",
            note=f"Keras {1000 * median(t.wall for t in single['keras']) / singles:.2f} ms, "
            f"PyTorch {1000 * median(t.wall for t in single['torch']) / singles:.2f} ms",
        )
    )
    report.details[label] = {
        "model": vars(config),
        "trainable_parameters": {"keras": keras_side.trainable, "torch": torch_side.trainable},
        "torch_threads": torch.get_num_threads(),
        "channels_last": args.channels_last,
        "train_seconds": {k: [t.wall for t in v] for k, v in train.items()},
        "infer_seconds": {k: [t.wall for t in v] for k, v in infer.items()},
        "single_seconds": {k: [t.wall for t in v] for k, v in single.items()},
        "train_ratios": ratios(train["keras"], train["torch"]),
        "infer_ratios": ratios(infer["keras"], infer["torch"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["227", "fer"], help="227 and/or fer")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=2, help="min. steps per round")
    parser.add_argument("--infer-batches", type=int, default=2, help="min. batches per round")
    parser.add_argument("--single-calls", type=int, default=5, help="min. batch-1 calls/round")
    parser.add_argument(
        "--round-seconds", type=float, default=4.0, help="Keras training time per round"
    )
    parser.add_argument("--warmup-steps", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument(
        "--channels-last", action="store_true", help="PyTorch channels_last memory format"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.batch_size, args.rounds, args.train_steps = 8, 2, 1
        args.infer_batches, args.single_calls, args.warmup_steps = 1, 2, 1
        args.round_seconds = 0.0
    try:
        import torch  # noqa: F401
    except ImportError:
        print("torch is not installed: pip install -e .[bench]  (torch==2.13.0)", file=sys.stderr)
        return 2
    report = Report("vs_pytorch", args)
    for label, config in size_configs(args):
        bench_size(label, config, args, report)
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
