"""Per video and per person: how long each person was seen, the share of that time under
each label, the mean confidence, and the moments the label changed."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from emotion_tf.video.smoothing import LabelChange
from emotion_tf.video.source import ReadStats, VideoInfo

if TYPE_CHECKING:
    from emotion_tf.video.analyze import FrameResult


@dataclasses.dataclass
class PersonSeries:
    """One person's processed frames: times, smoothed and own probabilities, labels."""

    times: list[float] = dataclasses.field(default_factory=list)
    frames: list[int] = dataclasses.field(default_factory=list)
    smoothed: list[list[float]] = dataclasses.field(default_factory=list)
    raw: list[list[float]] = dataclasses.field(default_factory=list)
    labels: list[str] = dataclasses.field(default_factory=list)
    confidences: list[float] = dataclasses.field(default_factory=list)
    changes: list[LabelChange] = dataclasses.field(default_factory=list)

    def dated_labels(self) -> list[str]:
        """The label of each frame with the changes dated back to when they happened (the
        smoothed label lags them by up to half the smoothing window)."""
        if not self.labels:
            return []
        current = self.changes[0].before if self.changes else self.labels[0]
        pending = list(self.changes)
        labels = []
        for time_s in self.times:
            while pending and pending[0].time_s <= time_s + 1e-9:
                current = pending.pop(0).after
            labels.append(current)
        return labels


@dataclasses.dataclass
class PersonSummary:
    person: int
    first_s: float
    last_s: float
    seconds_visible: float
    share: dict[str, float]
    mean_confidence: float
    changes: list[LabelChange]
    series: PersonSeries = dataclasses.field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "person": self.person,
            "first_s": self.first_s,
            "last_s": self.last_s,
            "seconds_visible": self.seconds_visible,
            "share": self.share,
            "mean_confidence": self.mean_confidence,
            "changes": [c.to_dict() for c in self.changes],
        }


@dataclasses.dataclass
class VideoSummary:
    source: str
    class_names: list[str]
    width: int
    height: int
    fps: float
    duration_s: float
    frames_decoded: int
    frames_processed: int
    sample_fps: float | None
    frames_with_faces: int
    people: list[PersonSummary]
    gaps: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    variable_frame_rate: bool = False
    truncated: bool = False
    dropped_frames: int = 0
    warnings: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("people", "gaps")
        }
        data["gaps"] = [{"start_s": a, "end_s": b} for a, b in self.gaps]
        data["people"] = [p.to_dict() for p in self.people]
        return data


class SummaryBuilder:
    """Collects `FrameResult`s; `build` turns them into a `VideoSummary`."""

    def __init__(self, info: VideoInfo, class_names: list[str], sample_fps: float | None):
        self.info = info
        self.class_names = list(class_names)
        self.sample_fps = sample_fps
        self.times: list[float] = []
        self.with_faces = 0
        self.series: dict[int, PersonSeries] = {}

    def add(self, result: FrameResult) -> None:
        self.times.append(result.time_s)
        self.with_faces += bool(result.people)
        for person in result.people:
            series = self.series.setdefault(person.person, PersonSeries())
            series.times.append(result.time_s)
            series.frames.append(result.frame)
            series.smoothed.append([person.probabilities[n] for n in self.class_names])
            series.raw.append([person.raw_probabilities[n] for n in self.class_names])
            series.labels.append(person.label)
            series.confidences.append(person.confidence)
            if person.change is not None:
                series.changes.append(person.change)

    def frame_durations(self, gaps: list[tuple[float, float]]) -> dict[float, float]:
        """Seconds each processed frame stands for: up to the next processed frame, at most
        twice the usual interval, nothing across a gap; the last one the usual interval."""
        times = self.times
        if not times:
            return {}
        intervals = np.diff(times) if len(times) > 1 else np.array([])
        usual = float(np.median(intervals)) if len(intervals) else 0.0
        if usual <= 0:
            usual = 1.0 / (self.sample_fps or self.info.fps or 1.0)
        gap_starts = {start for start, _ in gaps}
        durations = {}
        for i, time_s in enumerate(times):
            step = times[i + 1] - time_s if i + 1 < len(times) else usual
            durations[time_s] = min(step, 2 * usual)
        # A gap between processed frames: the frame before it stands for one usual interval.
        for i, time_s in enumerate(times[:-1]):
            if any(time_s <= g < times[i + 1] for g in gap_starts):
                durations[time_s] = min(durations[time_s], usual)
        return durations

    def build(
        self, stats: ReadStats, truncated: bool = False, dropped_frames: int = 0
    ) -> VideoSummary:
        durations = self.frame_durations(stats.gaps)
        duration = self.info.duration_s
        if self.times:
            duration = max(duration, self.times[-1] + (durations[self.times[-1]] or 0.0))
        people = []
        for person, series in sorted(self.series.items()):
            seen = [durations[t] for t in series.times]
            total = float(sum(seen))
            labels = series.dated_labels()
            share = {
                name: round(
                    sum(d for d, label in zip(seen, labels) if label == name) / total
                    if total
                    else 0.0,
                    4,
                )
                for name in self.class_names
            }
            # Frames whose timestamps collide (1 ns apart, rounded) each count once as a whole
            # interval: nobody is seen for longer than the clip lasts.
            total = min(total, duration) if duration > 0 else total
            people.append(
                PersonSummary(
                    person,
                    series.times[0],
                    series.times[-1],
                    round(total, 3),
                    share,
                    round(float(np.mean(series.confidences)), 4),
                    series.changes,
                    series,
                )
            )
        warnings = []
        if truncated:
            expected = f" of the {self.info.frame_count}" if self.info.frame_count else ""
            warnings.append(
                f"{self.info.source}: decoding stopped after {stats.frames_read}{expected} "
                "frames (truncated or damaged file)"
            )
        if stats.gaps:
            lost = sum(b - a for a, b in stats.gaps)
            warnings.append(
                f"{self.info.source}: {len(stats.gaps)} gap(s) in the frames, "
                f"{lost:.2f} s in all (first at {stats.gaps[0][0]:.2f} s)"
            )
        if dropped_frames:
            warnings.append(
                f"{self.info.source}: dropped {dropped_frames} frame(s) to keep up in real time"
            )
        return VideoSummary(
            self.info.source,
            self.class_names,
            self.info.width,
            self.info.height,
            self.info.fps,
            round(duration, 3),
            stats.frames_read,
            len(self.times),
            self.sample_fps,
            self.with_faces,
            people,
            list(stats.gaps),
            stats.variable_rate,
            truncated,
            dropped_frames,
            warnings,
        )


def format_summary(summary: VideoSummary) -> str:
    """The summary as a few lines for people."""
    rate = "every frame" if summary.sample_fps is None else f"{summary.sample_fps:g} frames/s"
    lines = [
        f"{summary.source}: {summary.duration_s:.2f} s, {summary.width}x{summary.height} at "
        f"{summary.fps:.3g} fps{' (variable)' if summary.variable_frame_rate else ''}; "
        f"{summary.frames_processed} of {summary.frames_decoded} frames processed ({rate}), "
        f"{summary.frames_with_faces} with faces; {len(summary.people)} person(s)"
    ]
    for person in summary.people:
        shares = ", ".join(f"{name} {100 * v:.0f}%" for name, v in person.share.items())
        changes = "; ".join(f"{c.before}->{c.after} at {c.time_s:.2f} s" for c in person.changes)
        lines.append(
            f"  person {person.person}: seen {person.seconds_visible:.2f} s "
            f"({person.first_s:.2f}-{person.last_s:.2f} s), {shares}, mean confidence "
            f"{person.mean_confidence:.3f}" + (f", changes: {changes}" if changes else "")
        )
    lines += [f"  warning: {w}" for w in summary.warnings]
    return "\n".join(lines)
