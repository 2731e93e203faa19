"""Timing helpers: wall and CPU seconds, interleaved (ABBA) rounds, medians and percentiles."""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from benchmarks.machine import process_cpu_seconds


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
