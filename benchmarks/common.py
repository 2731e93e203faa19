"""Shared helpers for the benchmark scripts: figures, summary lines, JSON, timing, test images.

Every script prints one summary line per figure::

    SUMMARY <name> <value> <unit> target <op> <threshold> PASS|FAIL

(`target - INFO` for figures without a target) and writes the same figures, with the details
and the machine they were measured on, as JSON to `--out`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
CLASSES = ("happy", "sad")
FER_RECIPE = REPO_ROOT / "configs" / "fer2013.yaml"


@dataclasses.dataclass
class Figure:
    """One measured figure with its target; `op` is '>=' or '<=' (empty: no target)."""

    name: str
    value: float
    unit: str
    op: str = ""
    threshold: float | None = None
    note: str = ""

    @property
    def status(self) -> str:
        if not self.op or self.threshold is None:
            return "INFO"
        if self.value != self.value:  # NaN: nothing was measured
            return "FAIL"
        ok = self.value >= self.threshold if self.op == ">=" else self.value <= self.threshold
        return "PASS" if ok else "FAIL"

    @property
    def target(self) -> str:
        return f"{self.op} {self.threshold:g}" if self.op and self.threshold is not None else "-"

    def line(self) -> str:
        value = _format_value(self.value)
        note = f"  ({self.note})" if self.note else ""
        return (
            f"SUMMARY {self.name:<44} {value:>10} {self.unit:<9} target {self.target:<8} "
            f"{self.status}{note}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "target": self.target,
            "status": self.status,
            "note": self.note,
        }


def _format_value(value: float) -> str:
    if value != value:
        return "nan"
    if abs(value) >= 100:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.3f}"
    return f"{value:.4f}"


class Report:
    """Collects figures and details; `finish` prints the summary lines and writes the JSON."""

    def __init__(self, script: str, args: argparse.Namespace):
        self.script = script
        self.args = args
        self.figures: list[Figure] = []
        self.details: dict[str, Any] = {}
        self.started = time.time()
        self.cpu_started = time.process_time()
        self.environment = environment()

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        print(figure.line(), flush=True)
        return figure

    def finish(self) -> Path:
        out = Path(self.args.out) if self.args.out else RESULTS_DIR / f"{self.script}.json"
        wall = time.time() - self.started
        self.environment["load_average_end"] = _load_average()
        self.environment["wall_seconds"] = round(wall, 1)
        self.environment["process_cpu_seconds"] = round(time.process_time() - self.cpu_started, 1)
        payload = {
            "script": self.script,
            "started": datetime.datetime.fromtimestamp(self.started).isoformat(timespec="seconds"),
            "arguments": {k: v for k, v in vars(self.args).items()},
            "environment": self.environment,
            "figures": [f.to_dict() for f in self.figures],
            "details": self.details,
        }
        from emotion_tf.io_utils import atomic_write_json

        atomic_write_json(out, _jsonable(payload))
        print("\n".join(summary_block(self.figures)), flush=True)
        print(
            f"# {len(self.figures)} figure(s); load average {self.environment['load_average']} "
            f"-> {self.environment['load_average_end']} on {self.environment['cpus']} CPU(s); "
            f"wall {wall:.0f}s, process CPU {self.environment['process_cpu_seconds']}s; "
            f"JSON: {out}",
            flush=True,
        )
        return out


def summary_block(figures: Sequence[Figure]) -> list[str]:
    """All summary lines together, for the end of a run's output."""
    return ["", "# summary", *(f.line() for f in figures)]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--out", help="JSON output path (default: benchmarks/results/<script>.json)"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes and a handful of steps: proves the script runs, measures nothing",
    )
    parser.add_argument(
        "--work-dir", help="where generated images and runs go (default: a temp dir, removed)"
    )
    return parser


# --- the machine -------------------------------------------------------------------------


def _load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def has_bf16_cpu() -> bool:
    flags = cpu_flags()
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def environment() -> dict[str, Any]:
    """What the figures were measured on, including how busy the machine was."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpus": cpu_count(),
        "cpu_flags": sorted(
            {"avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16"} & cpu_flags()
        ),
        "load_average": _load_average(),
    }
    try:
        import keras
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        info["keras"] = keras.__version__
        info["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    except ImportError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    return info


def process_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- timing --------------------------------------------------------------------------------


@dataclasses.dataclass
class Timed:
    """Wall and process-CPU seconds of one timed call."""

    wall: float
    cpu: float


def timed(fn: Callable[[], Any]) -> Timed:
    cpu0, wall0 = process_cpu_seconds(), time.perf_counter()
    fn()
    return Timed(time.perf_counter() - wall0, process_cpu_seconds() - cpu0)


def interleaved(candidates: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[Timed]]:
    """Time each candidate once per round, alternating the order (ABBA) to cancel drift."""
    names = list(candidates)
    results: dict[str, list[Timed]] = {name: [] for name in names}
    for index in range(rounds):
        order = names if index % 2 == 0 else list(reversed(names))
        for name in order:
            results[name].append(timed(candidates[name]))
    return results


def calibrate(fn: Callable[[int], Any], seconds: float, minimum: int) -> int:
    """How many units of work `fn(n)` does in about `seconds` (at least `minimum`)."""
    one = timed(lambda: fn(1)).wall
    return max(minimum, math.ceil(seconds / max(one, 1e-6)))


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ratios(a: Sequence[Timed], b: Sequence[Timed]) -> list[float]:
    """Per-round speed ratios a/b (equal work per round: the inverse ratio of times)."""
    return [tb.wall / ta.wall for ta, tb in zip(a, b)]


# --- configuration -------------------------------------------------------------------------


FER_FILE_SIZE = 48  # side of the FER2013 files; the recipe may upscale them


def fer_recipe_model() -> dict[str, Any]:
    """input_size, channels, width, normalization, test_time_flip, batch size of the FER recipe.

    Read from configs/fer2013.yaml where it exists; otherwise 48 px grayscale at half width.
    """
    values = {
        "input_size": 48,
        "channels": 1,
        "width": 0.5,
        "normalization": "batch_norm",
        "test_time_flip": False,
        "batch_size": 64,
    }
    if FER_RECIPE.is_file():
        import yaml

        recipe = yaml.safe_load(FER_RECIPE.read_text()) or {}
        model = recipe.get("model") or {}
        for key in ("input_size", "channels", "width", "normalization", "test_time_flip"):
            if key in model:
                values[key] = model[key]
        values["batch_size"] = (recipe.get("data") or {}).get("batch_size", values["batch_size"])
    return values


def model_overrides(
    input_size: int, channels: int, width: float, normalization: str = "none"
) -> list[str]:
    return [
        f"model.input_size={input_size}",
        f"model.channels={channels}",
        f"model.width={width}",
        f"model.normalization={normalization}",
    ]


# --- test images ---------------------------------------------------------------------------


def shared_fer_dir() -> Path | None:
    """../shared/data/fer2013-happy-sad (or $EMOTION_TF_SHARED_DATA/...) if it exists."""
    base = Path(os.environ.get("EMOTION_TF_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    path = base / "fer2013-happy-sad"
    return path if (path / "train").is_dir() else None


def _source_images(count: int, seed: int, start: int = 0) -> Iterable[tuple[str, Any]]:
    """(class name, PIL image) pairs: real FER faces where available, else synthetic faces.

    FER files are taken in one fixed shuffled order per class from position `start` on, so
    that disjoint ranges (train, validation) share no file until the set runs out.
    """
    import numpy as np
    from PIL import Image

    fer = shared_fer_dir()
    rng = np.random.default_rng(seed)
    if fer is not None:
        order = np.random.default_rng(0)
        per_class = {}
        for name in CLASSES:
            files = sorted((fer / "train" / name).glob("*.jpg"))
            per_class[name] = [files[i] for i in order.permutation(len(files))]
        for index in range(start, start + count):
            name = CLASSES[index % len(CLASSES)]
            files = per_class[name]
            with Image.open(files[(index // len(CLASSES)) % len(files)]) as image:
                yield name, image.convert("L")
        return
    from emotion_tf.data.demo import draw_face

    for index in range(count):
        name = CLASSES[index % len(CLASSES)]
        yield name, draw_face(rng, name, 96, grayscale=False)


def image_source() -> str:
    return "fer2013 (../shared)" if shared_fer_dir() is not None else "synthetic faces"


def make_jpegs(
    root: Path,
    count: int,
    size: int,
    channels: int,
    seed: int = 0,
    quality: int = 90,
    start: int = 0,
) -> list[Path]:
    """Write `count` JPEGs of size x size pixels under root/<class>/ and return their paths.

    Real FER2013 faces from ../shared are resized (and tinted, for colour) to `size`; without
    them, synthetic schematic faces are used. Colour images get a random tint so that the JPEG
    carries real chroma data to decode.
    """
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed + 1)
    paths = []
    for index, (name, image) in enumerate(_source_images(count, seed, start)):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        if channels == 1:
            image = image.convert("L")
        else:
            gray = np.asarray(image.convert("L"), dtype=np.float32)
            tint = rng.uniform(0.6, 1.2, size=3)
            rgb = np.clip(gray[..., None] * tint[None, None, :], 0, 255).astype(np.uint8)
            image = Image.fromarray(rgb, "RGB")
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BICUBIC)
        path = folder / f"{name}_{index:05d}.jpg"
        image.save(path, format="JPEG", quality=quality)
        paths.append(path)
    return paths


def make_split_dir(
    root: Path, train: int, validation: int, size: int, channels: int, seed: int = 0
) -> Path:
    """A data dir with train/ and validation/ class folders of generated JPEGs."""
    make_jpegs(root / "train", train, size, channels, seed)
    make_jpegs(root / "validation", validation, size, channels, seed + 100, start=train)
    return root


class WorkDir:
    """A temp dir (removed at the end) or a given folder (kept)."""

    def __init__(self, path: str | None, prefix: str):
        import tempfile

        self._tmp = None if path else tempfile.TemporaryDirectory(prefix=prefix)
        self.path = Path(path) if path else Path(self._tmp.name)
        self.path.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def log(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)
