"""Figures and reports: every benchmark prints one summary line per figure::

    SUMMARY <name> <value> <unit> target <op> <threshold> PASS|FAIL

(`target - INFO` for figures without a target) and writes the same figures, with the details
and the machine they were measured on, as JSON to `--out`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.machine import environment, load_average

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"


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
    if 0 < abs(value) < 0.001:
        return f"{value:.2e}"  # a probability difference of 2.5e-06 is not "0.0000"
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
        self.environment["load_average_end"] = load_average()
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


def log(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)
