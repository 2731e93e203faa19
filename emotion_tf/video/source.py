"""Open video files, cameras and network streams with OpenCV's FFmpeg backend and read
decoded RGB frames with their timestamps.

Timestamps come from the container (each frame's presentation time), so variable-frame-rate
files get their real times; cameras and network streams are timed by the wall clock from the
first frame. Network sources are opened with open/read timeouts so a dead stream ends instead of
blocking.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from emotion_tf.errors import VideoError
from emotion_tf.pipeline.limits import size_problem
from emotion_tf.pipeline.options import DEFAULT_MAX_PIXELS

# Frames analysed per second when not told: expressions change over tenths of seconds, and
# 10 frames/s keeps a 2-core CPU well ahead of real time.
DEFAULT_SAMPLE_FPS = 10.0
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
# Open and read timeouts for network streams (milliseconds): a stream that stops delivering
# frames ends the read instead of blocking it.
STREAM_TIMEOUT_MS = 5000
# Frame intervals above this many times the median count as a gap in the video.
GAP_FACTOR = 3.0


def is_video_path(path: str | Path) -> bool:
    """True when `path` names a file with a video suffix (mp4, mov, avi, mkv, webm, m4v)."""
    return Path(str(path)).suffix.lower() in VIDEO_SUFFIXES


def source_kind(source: str) -> str:
    """ "camera" (an integer index), "stream" (a URL) or "file"."""
    if source.isdigit():
        return "camera"
    if "://" in source:
        return "stream"
    return "file"


@dataclasses.dataclass(frozen=True)
class Frame:
    """One decoded frame: its index in the source, its time in seconds, RGB uint8 pixels."""

    index: int
    time_s: float
    image: np.ndarray


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What the container says about a source (frame_count and duration_s 0 when unknown)."""

    source: str
    kind: str
    width: int
    height: int
    fps: float
    frame_count: int

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 and self.frame_count > 0 else 0.0


class VideoSource:
    """A video file, camera or stream opened for reading; iterate it for `Frame`s.

    Raises `VideoError` (one line naming the source) when it cannot be opened or shows no
    frame. Use as a context manager, or call `close()`.
    """

    def __init__(self, source: str | int | Path, timeout_ms: int = STREAM_TIMEOUT_MS):
        import cv2

        self.name = str(source)
        self.kind = source_kind(self.name)
        if self.kind == "file":
            if not os.path.isfile(self.name):
                raise VideoError(f"{self.name}: no such file")
            if os.path.getsize(self.name) == 0:
                raise VideoError(f"{self.name}: empty file, not a video")
        target: str | int = int(self.name) if self.kind == "camera" else self.name
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            timeout_ms,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            timeout_ms,
        ]
        backend = cv2.CAP_ANY if self.kind == "camera" else cv2.CAP_FFMPEG
        self._capture = cv2.VideoCapture(target, backend, params)
        if not self._capture.isOpened():
            self._capture.release()
            what = {
                "file": "cannot be opened as a video (not a video file, no video stream, or "
                "damaged)",
                "camera": "camera cannot be opened",
                "stream": f"stream cannot be opened (nothing answered within {timeout_ms} ms)",
            }[self.kind]
            raise VideoError(f"{self.name}: {what}")
        fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.info = VideoInfo(
            self.name,
            self.kind,
            int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            fps if math.isfinite(fps) and 0 < fps < 1000 else 0.0,
            max(count, 0) if self.kind == "file" else 0,
        )
        self.stats = ReadStats()
        known = self.info.width > 0 and self.info.height > 0
        problem = size_problem(self.info.width, self.info.height, DEFAULT_MAX_PIXELS)
        if known and problem is not None:
            self._capture.release()
            raise VideoError(f"{self.name}: frames {problem}")

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._capture.release()

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def frames(self, keep: Callable[[float], bool] | None = None) -> Iterator[Frame]:
        """Yield the frames in order; `keep(time_s)` (e.g. a `Sampler`) skips frames without
        converting their pixels. Raises `VideoError` when the source shows no frame at all."""
        import cv2

        capture, stats = self._capture, self.stats
        wall_start: float | None = None
        while True:
            if not capture.grab():
                break
            if self.kind == "file":
                time_s = float(capture.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
                if stats.frames_read and time_s <= stats.last_time_s and self.info.fps > 0:
                    time_s = stats.last_time_s + 1.0 / self.info.fps  # no usable timestamp
            else:
                now = time.monotonic()
                wall_start = now if wall_start is None else wall_start
                time_s = now - wall_start
            index = stats.frames_read
            stats.add(time_s, self.info.fps)
            if keep is not None and not keep(time_s):
                continue
            ok, bgr = capture.retrieve()
            if not ok or bgr is None:
                stats.read_failed = True
                break
            yield Frame(index, round(time_s, 6), _to_rgb(bgr))
        if stats.frames_read == 0:
            raise VideoError(f"{self.name}: has no frames (empty or damaged video)")

    @property
    def ended_early(self) -> bool:
        """True when a file stopped before the frame count its header announces (truncated)."""
        expected = self.info.frame_count
        return self.stats.read_failed or (0 < self.stats.frames_read < expected - 1)


@dataclasses.dataclass
class ReadStats:
    """What reading a source met: frames, gaps (intervals over `GAP_FACTOR` times the nominal
    one, or the first intervals' median when the rate is unknown) and the interval range."""

    frames_read: int = 0
    last_time_s: float = 0.0
    min_interval_s: float = math.inf
    max_interval_s: float = 0.0
    gaps: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    read_failed: bool = False
    _early: list[float] = dataclasses.field(default_factory=list)

    def add(self, time_s: float, nominal_fps: float = 0.0) -> None:
        if self.frames_read:
            interval = time_s - self.last_time_s
            usual = 1.0 / nominal_fps if nominal_fps > 0 else None
            if usual is None:
                if len(self._early) < 10:
                    self._early.append(interval)
                usual = float(np.median(self._early))
            if interval > GAP_FACTOR * max(usual, 1e-3):
                self.gaps.append((round(self.last_time_s, 6), round(time_s, 6)))
            else:
                self.min_interval_s = min(self.min_interval_s, interval)
                self.max_interval_s = max(self.max_interval_s, interval)
        self.frames_read += 1
        self.last_time_s = time_s

    @property
    def variable_rate(self) -> bool:
        """True when the frame intervals (gaps aside) vary by more than a quarter."""
        if self.frames_read < 3 or not math.isfinite(self.min_interval_s):
            return False
        return self.max_interval_s > 1.25 * self.min_interval_s + 1e-3


def _to_rgb(bgr: np.ndarray) -> np.ndarray:
    import cv2

    if bgr.ndim == 2:
        return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class Sampler:
    """Keeps the first frame at or after each multiple of 1/`fps` seconds (None: every frame).

    Works on timestamps, so a variable frame rate or dropped frames do not shift the sampling.
    """

    def __init__(self, fps: float | None):
        if fps is not None and not fps > 0:
            raise VideoError(f"sample fps must be > 0 or 'all'. Received: sample_fps={fps}")
        self.fps = fps
        self._next_due = -math.inf

    def __call__(self, time_s: float) -> bool:
        if self.fps is None:
            return True
        if time_s + 1e-6 < self._next_due:
            return False
        self._next_due = (math.floor(time_s * self.fps + 1e-6) + 1) / self.fps
        return True
