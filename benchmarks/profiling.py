"""Where training time goes: a Keras callback that times epochs, and a TF-profiler summary.

`EpochTimer` records, per epoch, the training phase (epoch start to the last step's end), the
validation pass, and everything after it (checkpoint, backup and log callbacks). It can switch
the TF profiler on for a few steps; `summarize_profile` then reads the trace (`*.xplane.pb`)
with the protobuf classes that ship inside TensorFlow and adds up the kernel time by stage.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import glob
import resource
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras

# Op types that belong to each input stage (the model's ops run inside the train function).
DECODE_OPS = {"ReadFile", "DecodeJpeg", "DecodeImage", "DecodePng", "DecodeBmp", "DecodeGif"}
RESIZE_PREFIXES = ("Resize", "ScaleAndTranslate")
STEP_EVENTS = {"multi_step_on_iterator", "one_step_on_iterator"}
INPUT_WAIT_EVENT = "IteratorGetNextOp::DoCompute"


@dataclasses.dataclass
class EpochTiming:
    epoch: int
    begin: float
    first_step: float = 0.0
    last_step_end: float = 0.0
    steps: int = 0
    validation_seconds: float = 0.0
    end: float = 0.0
    profiled: bool = False
    cpu_begin: float = 0.0
    cpu_last_step_end: float = 0.0

    @property
    def train_cpu_seconds(self) -> float:
        """Process CPU seconds of the training phase (all threads: model and input pipeline)."""
        return self.cpu_last_step_end - self.cpu_begin

    @property
    def train_seconds(self) -> float:
        """Epoch start (iterator creation included) to the end of its last training step."""
        return self.last_step_end - self.begin

    @property
    def after_steps_seconds(self) -> float:
        """Validation plus the end-of-epoch callbacks (checkpoint, backup, logs)."""
        return self.end - self.last_step_end

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "steps": self.steps,
            "train_seconds": round(self.train_seconds, 3),
            "train_cpu_seconds": round(self.train_cpu_seconds, 3),
            "validation_seconds": round(self.validation_seconds, 3),
            "callbacks_seconds": round(self.after_steps_seconds - self.validation_seconds, 3),
            "epoch_seconds": round(self.end - self.begin, 3),
            "profiled": self.profiled,
        }


class EpochTimer(keras.callbacks.Callback):
    """Time every epoch's phases; profile steps [start, stop) of epoch `profile_epoch`."""

    def __init__(
        self,
        profile_epoch: int | None = None,
        profile_steps: tuple[int, int] = (2, 6),
        profile_dir: Path | None = None,
    ):
        super().__init__()
        self.epochs: list[EpochTiming] = []
        self.profile_epoch = profile_epoch
        self.profile_steps = profile_steps
        self.profile_dir = profile_dir
        self._profiling = False
        self._test_begin = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        if self.epochs and not self.epochs[-1].end:
            self.epochs[-1].end = now
        self.epochs.append(
            EpochTiming(epoch, now, profiled=epoch == self.profile_epoch, cpu_begin=_process_cpu())
        )

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        current = self.epochs[-1]
        if current.steps == 0:
            current.first_step = time.perf_counter()
        if current.profiled and current.steps == self.profile_steps[0]:
            import tensorflow as tf

            tf.profiler.experimental.start(str(self.profile_dir))
            self._profiling = True

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        current = self.epochs[-1]
        current.steps += 1
        if self._profiling and current.steps == self.profile_steps[1]:
            self._stop_profiler()
        current.last_step_end = time.perf_counter()
        current.cpu_last_step_end = _process_cpu()

    def on_test_begin(self, logs: dict | None = None) -> None:
        self._test_begin = time.perf_counter()

    def on_test_end(self, logs: dict | None = None) -> None:
        if self.epochs:
            self.epochs[-1].validation_seconds += time.perf_counter() - self._test_begin

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self._profiling:
            self._stop_profiler()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.epochs and not self.epochs[-1].end:
            self.epochs[-1].end = time.perf_counter()

    def _stop_profiler(self) -> None:
        import tensorflow as tf

        tf.profiler.experimental.stop()
        self._profiling = False

    def timed_epochs(self, skip_first: int = 1) -> list[EpochTiming]:
        """Epochs after the warm-up ones, profiled epochs left out."""
        return [e for e in self.epochs[skip_first:] if not e.profiled and e.steps]


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_ms_per_image(epochs: list[EpochTiming], batch_size: int) -> float:
    """Process CPU milliseconds per trained image over the training phases of `epochs`."""
    images = sum(e.steps for e in epochs) * batch_size
    return 1000 * sum(e.train_cpu_seconds for e in epochs) / images if images else float("nan")


def images_per_second(epochs: list[EpochTiming], batch_size: int, phase: str = "train") -> float:
    """Throughput over `epochs`: phase 'train' (steps only) or 'epoch' (everything)."""
    images = sum(e.steps for e in epochs) * batch_size
    if phase == "train":
        seconds = sum(e.train_seconds for e in epochs)
    else:
        seconds = sum(e.end - e.begin for e in epochs)
    return images / seconds if seconds > 0 else float("nan")


@contextlib.contextmanager
def observe_fit(callback: keras.callbacks.Callback) -> Iterator[None]:
    """Make every `Model.fit` in the block also call `callback` (first, before the others).

    The trainer builds its own callback list; this adds a timer without changing its code.
    """
    original = keras.Model.fit

    def fit(self: keras.Model, *args: Any, **kwargs: Any) -> Any:
        kwargs["callbacks"] = [callback, *(kwargs.get("callbacks") or [])]
        return original(self, *args, **kwargs)

    keras.Model.fit = fit
    try:
        yield
    finally:
        keras.Model.fit = original


def _category(name: str) -> tuple[str, str] | None:
    """(stage, op type) of a kernel event named 'scope/name:OpType', or None for others."""
    if ":" not in name or " " in name or "::" in name:
        return None
    scope, op_type = name.rsplit(":", 1)
    if not op_type or not op_type[0].isalpha():
        return None
    op_type = op_type.replace("_MklNative", "").replace("_Mkl", "")
    if scope.startswith("StatefulPartitionedCall") or "gradient_tape" in scope:
        return "model step", op_type
    if "augment" in scope:
        return "augment", op_type
    if op_type in DECODE_OPS:
        return "read+decode", op_type
    if op_type.startswith(RESIZE_PREFIXES):
        return "resize", op_type
    return "other input ops", op_type


def summarize_profile(profile_dir: Path) -> dict[str, Any]:
    """Kernel milliseconds per stage, the step wall time and the time steps waited for input."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    files = sorted(glob.glob(str(Path(profile_dir) / "**" / "*.xplane.pb"), recursive=True))
    if not files:
        return {"error": f"no profile written under {profile_dir}"}
    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(files[-1]).read_bytes())
    stage_ps: collections.Counter[str] = collections.Counter()
    op_ps: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    step_ps = wait_ps = 0
    steps = 0
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        metadata = plane.event_metadata
        for line in plane.lines:
            for event in line.events:
                name = metadata[event.metadata_id].name
                if name in STEP_EVENTS:
                    step_ps += event.duration_ps
                    steps += 1
                elif name == INPUT_WAIT_EVENT:
                    wait_ps += event.duration_ps
                else:
                    found = _category(name)
                    if found:
                        stage_ps[found[0]] += event.duration_ps
                        op_ps[found[0]][found[1]] += event.duration_ps
    kernel_total = sum(stage_ps.values()) or 1
    return {
        "trace": files[-1],
        "steps": steps,
        "step_wall_ms": round(step_ps / 1e9, 1),
        "input_wait_ms": round(wait_ps / 1e9, 1),
        "input_wait_share": round(wait_ps / step_ps, 4) if step_ps else None,
        "kernel_ms_by_stage": {k: round(v / 1e9, 1) for k, v in stage_ps.most_common()},
        "kernel_share_by_stage": {k: round(v / kernel_total, 4) for k, v in stage_ps.most_common()},
        "top_ops_by_stage": {
            stage: {op: round(ps / 1e9, 1) for op, ps in counter.most_common(6)}
            for stage, counter in op_ps.items()
        },
    }


def profile_lines(summary: dict[str, Any]) -> list[str]:
    """A short human-readable table of `summarize_profile`'s result."""
    if "error" in summary:
        return [f"profile: {summary['error']}"]
    lines = [
        f"profile: {summary['steps']} steps, step wall {summary['step_wall_ms']} ms, "
        f"waiting for input {summary['input_wait_ms']} ms "
        f"({100 * (summary['input_wait_share'] or 0):.1f}% of step time)"
    ]
    for stage, ms in summary["kernel_ms_by_stage"].items():
        share = 100 * summary["kernel_share_by_stage"][stage]
        ops = ", ".join(f"{op} {v}" for op, v in summary["top_ops_by_stage"][stage].items())
        lines.append(f"profile:   {stage:<16} {ms:>9.1f} ms CPU ({share:4.1f}%)  top: {ops}")
    return lines
