"""Live sources (a camera, a stream, or a file played at its own speed) analysed in real time.

A reader thread decodes frames as they arrive and keeps only the newest one; a frame that is
replaced before the analysis took it is dropped and counted, so the analysis never falls
behind. A source that stops delivering frames for `stall_s` seconds ends the run with a
warning instead of blocking it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

from emotion_tf.faces.locate import Detector
from emotion_tf.video.analyze import DEFAULT_SMOOTH_S, Classifier, FrameAnalyzer, FrameResult
from emotion_tf.video.source import STREAM_TIMEOUT_MS, Frame, Sampler, VideoSource
from emotion_tf.video.summary import SummaryBuilder, VideoSummary

DEFAULT_STALL_S = 10.0


class LatestFrameReader:
    """Reads `source` on a daemon thread; `get()` returns the newest unread frame.

    Files are paced to their timestamps (played at their own speed) when `realtime` is set.
    """

    def __init__(self, source: VideoSource, sampler: Sampler, realtime: bool = True):
        self.source = source
        self.sampler = sampler
        self.realtime = realtime and source.kind == "file"
        self.dropped = 0
        self.delivered = 0
        self.error: Exception | None = None
        self._frame: Frame | None = None
        self._ended = False
        self._stop = threading.Event()
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="video-reader", daemon=True)

    def start(self) -> LatestFrameReader:
        self._thread.start()
        return self

    def _run(self) -> None:
        start = time.monotonic()
        try:
            for frame in self.source.frames(self.sampler):
                if self._stop.is_set():
                    break
                if self.realtime:
                    delay = start + frame.time_s - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        break
                with self._ready:
                    if self._frame is not None:
                        self.dropped += 1
                    self._frame = frame
                    self._ready.notify()
        except Exception as err:  # reported by the consumer, never lost in the thread
            self.error = err
        finally:
            with self._ready:
                self._ended = True
                self._ready.notify()

    def get(self, timeout: float) -> Frame | None:
        """The newest frame not yet taken; None at the end of the source. Raises TimeoutError
        when nothing arrives for `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._ready:
            while self._frame is None and not self._ended:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no frame for {timeout:g} s")
                self._ready.wait(min(left, 0.25))
            frame, self._frame = self._frame, None
        if frame is not None:
            self.delivered += 1
        return frame

    def stop(self) -> bool:
        """Stop reading; True when the thread ended (False: still blocked inside the decoder)."""
        self._stop.set()
        # A read blocked on a stalled stream returns after OpenCV's read timeout; waiting that
        # long keeps the process from exiting with the thread inside the decoder (which aborts).
        self._thread.join(timeout=STREAM_TIMEOUT_MS / 1000 + 3.0)
        return not self._thread.is_alive()


class LiveAnalysis:
    """Iterate for the `FrameResult`s of a live source as they come; then read `summary`.

    Stops at the end of the source, when the source stalls for `stall_s` seconds, or when the
    caller stops iterating (e.g. on Ctrl-C); the summary is built in every case.
    """

    def __init__(
        self,
        model: Classifier,
        source: str | int | Path,
        sample_fps: float | None = None,
        smooth_s: float = DEFAULT_SMOOTH_S,
        detector: Detector | str | None = None,
        margin: float | None = None,
        stall_s: float = DEFAULT_STALL_S,
        keep_images: bool = False,
    ):
        self.source_name = str(source)
        self.sample_fps = sample_fps
        self.stall_s = stall_s
        self.keep_images = keep_images
        self.analyzer = FrameAnalyzer(model, detector, smooth_s, margin)
        self.summary: VideoSummary | None = None
        self.reader: LatestFrameReader | None = None
        self.stopped_by: str = ""

    def __iter__(self) -> Iterator[FrameResult]:
        source = VideoSource(self.source_name)
        builder = SummaryBuilder(source.info, self.analyzer.class_names, self.sample_fps)
        self.analyzer.warm_up()
        reader = self.reader = LatestFrameReader(source, Sampler(self.sample_fps))
        reader.start()
        extra: list[str] = []
        try:
            while True:
                try:
                    frame = reader.get(self.stall_s)
                except TimeoutError:
                    self.stopped_by = "stall"
                    extra.append(
                        f"{self.source_name}: no frame for {self.stall_s:g} s; stopped "
                        "(the stream dropped or stalled)"
                    )
                    break
                if frame is None:
                    self.stopped_by = "end"
                    if source.kind != "file":
                        extra.append(
                            f"{self.source_name}: the stream ended or stopped delivering "
                            f"frames after {source.stats.frames_read} frame(s)"
                        )
                    break
                result = self.analyzer(self.source_name, frame)
                builder.add(result)
                if not self.keep_images:
                    result.image = None
                yield result
        finally:
            if not self.stopped_by:
                self.stopped_by = "interrupted"
            finished = reader.stop()
            if finished:
                source.close()
            if reader.error is not None:
                extra.append(f"{self.source_name}: {reader.error}")
            truncated = finished and source.kind == "file" and source.ended_early
            self.summary = builder.build(source.stats, truncated, reader.dropped)
            self.summary.warnings += extra
            if reader.error is not None and not builder.times:
                raise reader.error
