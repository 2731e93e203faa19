"""`emotion-tf watch MODEL SOURCE` and the video part of `emotion-tf predict`."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

import click

from emotion_tf.cli_base import command, model_option
from emotion_tf.errors import ConfigError, VideoError
from emotion_tf.faces.cli import detector_option
from emotion_tf.video.smoothing import DEFAULT_SMOOTH_S


class SampleFps(click.ParamType):
    """Frames per second to process, or "all" (every frame)."""

    name = "N|all"

    def convert(self, value: Any, param: Any, ctx: Any) -> float | None:
        if value is None or (isinstance(value, str) and value.lower() == "all"):
            return None
        try:
            fps = float(value)
        except (TypeError, ValueError):
            self.fail(f"expected a number of frames per second or 'all'. Received: {value!r}")
        if not fps > 0:
            self.fail(f"must be > 0. Received: {value!r}")
        return fps


SAMPLE_FPS = SampleFps()


def video_options(
    sample_fps: str, sample_fps_help: str, report_help: str, prefix: str = ""
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--sample-fps`, `--smooth` and `--report` (parameters `sample_fps`, `smooth_s`,
    `report_dir`), as `watch` and `predict` (whose help says "Videos: ") take them."""

    smooth_help = "average each person's probabilities over this many seconds (0: off)."

    def add(func: Callable[..., Any]) -> Callable[..., Any]:
        func = click.option(
            "--report", "report_dir", type=click.Path(file_okay=False), help=report_help
        )(func)
        func = click.option(
            "--smooth",
            "smooth_s",
            type=click.FloatRange(min=0),
            default=DEFAULT_SMOOTH_S,
            show_default=True,
            help=f"{prefix}{smooth_help}" if prefix else smooth_help.capitalize(),
        )(func)
        return click.option(
            "--sample-fps",
            type=SAMPLE_FPS,
            default=sample_fps,
            show_default=True,
            help=sample_fps_help,
        )(func)

    return add


def _outputs_for(
    video: str, report_dir: str | None, annotate_dir: str | None, several: bool
) -> tuple[Path | None, str | None, Path | None]:
    stem = Path(video).stem if several else None
    annotated = None
    if annotate_dir:
        annotated = Path(annotate_dir) / f"{Path(video).stem}.annotated.mp4"
        if annotated.resolve() == Path(video).resolve():
            raise ConfigError(f"--annotate would overwrite the input {video}")
    return (Path(report_dir) if report_dir else None), stem, annotated


def _finish(summary: Any, report_dir: Path | None, stem: str | None) -> None:
    from emotion_tf.video.report import write_video_report
    from emotion_tf.video.summary import format_summary

    click.echo(format_summary(summary), err=True)
    if report_dir is not None:
        paths = write_video_report(report_dir, summary, stem)
        click.echo(f"report: {paths[-1]}", err=True)


def predict_videos(
    model: Any,
    videos: list[str],
    fmt: str,
    sample_fps: float | None,
    smooth_s: float,
    margin: float | None,
    report_dir: str | None,
    annotate_dir: str | None,
    stream: TextIO | None = None,
    detector: str | None = None,
) -> int:
    """Analyse each video, stream its rows to `stream` (stdout), print each summary on stderr,
    write reports and annotated copies; returns the number of videos that failed."""
    from emotion_tf.video.analyze import VideoAnalysis, VideoRow, rows_of
    from emotion_tf.video.annotate import VideoAnnotator
    from emotion_tf.video.output import RowWriter

    stream = stream or click.get_text_stream("stdout")
    writer = RowWriter(stream, fmt, model.class_names, max(len(v) for v in videos))
    failed = 0
    try:
        for video in videos:
            report, stem, annotated = _outputs_for(video, report_dir, annotate_dir, len(videos) > 1)
            analysis = VideoAnalysis(
                model,
                video,
                sample_fps,
                smooth_s,
                detector,
                margin=margin,
                keep_images=bool(annotated),
            )
            annotator = None
            try:
                for result in analysis:
                    if annotated is not None and annotator is None:
                        fps = sample_fps or analysis.info.fps
                        annotator = VideoAnnotator(annotated, fps, model.class_names)
                    if annotator is not None:
                        annotator(result)
                    writer.write(rows_of(result))
            except VideoError as err:
                failed += 1
                writer.write([VideoRow(video, error=str(err).removeprefix(f"{video}: "))])
                click.echo(f"error: {err}", err=True)
                continue
            finally:
                written = annotator.close() if annotator is not None else None
            _finish(analysis.summary, report, stem)
            if written is not None:
                click.echo(f"annotated video: {written}", err=True)
    finally:
        writer.close()
    return failed


class StatusLine:
    """At most one line per `every_s` seconds on stderr: frames read, processed, dropped,
    processing rate and each person's current label."""

    def __init__(self, every_s: float = 1.0):
        self.every_s = every_s
        self.start = time.monotonic()
        self._last = self.start
        self._processed_at_last = 0

    def __call__(self, analysis: Any, processed: int, people: Iterable[Any]) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        rate = (processed - self._processed_at_last) / (now - self._last)
        self._last, self._processed_at_last = now, processed
        reader = analysis.reader
        read = reader.source.stats.frames_read if reader else 0
        dropped = reader.dropped if reader else 0
        faces = ", ".join(f"#{p.person} {p.label} {p.confidence:.2f}" for p in people) or "none"
        click.echo(
            f"[{now - self.start:6.1f} s] read {read}, processed {processed}, dropped "
            f"{dropped}, {rate:.1f} frames/s; faces: {faces}",
            err=True,
        )


def _show_window() -> Any:
    """cv2 with a usable window, or a ConfigError saying why not."""
    import os

    import cv2

    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise ConfigError("--show needs a display (no DISPLAY or WAYLAND_DISPLAY is set)")
    try:
        cv2.namedWindow("emotion-tf watch", cv2.WINDOW_NORMAL)
    except cv2.error as err:
        raise ConfigError(
            "--show needs OpenCV with window support (opencv-python, not "
            f"opencv-python-headless): {str(err).strip().splitlines()[-1]}"
        ) from err
    return cv2


@command("watch")
@click.argument("source")
@click.argument("legacy_source", required=False, metavar="")
@model_option
@detector_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "table", "json"]),
    default="jsonl",
    show_default=True,
    help="Row format; every frame's rows are written and flushed as they come.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    help="Write the rows to this file (default: stdout).",
)
@video_options(
    "all",
    "Frames per second to analyse, or 'all'; when processing falls behind, frames are dropped "
    "(counted) either way.",
    "At the end, write timeline.png, summary.json and report.html into this folder.",
)
@click.option(
    "--annotate",
    "annotate_dir",
    type=click.Path(file_okay=False),
    help="Write the analysed frames with boxes, person ids and labels as an MP4 here.",
)
@click.option(
    "--stall-timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Stop when the source delivers no frame for this many seconds.",
)
@click.option(
    "--face-margin",
    type=float,
    default=None,
    help="Margin around a detected face, as a fraction of its size (default: framed like "
    "FER2013 crops for the detector).",
)
@click.option(
    "--show", is_flag=True, help="Show the annotated frames in a window (needs a display)."
)
def watch(
    source: str,
    legacy_source: str | None,
    model: str | None,
    detector: str | None,
    fmt: str,
    output: str | None,
    sample_fps: float | None,
    smooth_s: float,
    report_dir: str | None,
    annotate_dir: str | None,
    stall_timeout: float,
    face_margin: float | None,
    show: bool,
) -> None:
    """Analyse SOURCE in real time: who looks happy or sad, and when.

    SOURCE is a camera index (0), a video file (played at its own speed) or a stream URL
    (rtsp://, http://). The packaged model is used unless --model names another (the older
    form `watch MODEL SOURCE` still works). Rows (time, frame, person, box, label,
    confidence, probabilities) are written as they come; a status line goes to stderr every
    second. Ctrl-C, the end of the source or a stalled stream stops it cleanly: outputs are
    flushed and the summary written.
    """
    if legacy_source is not None:
        if model is not None:
            raise ConfigError("name the model once: `watch SOURCE --model MODEL`")
        model, source = source, legacy_source
    from emotion_tf.predictors.resolve import open_model
    from emotion_tf.video.live import LiveAnalysis

    cv2 = _show_window() if show else None
    loaded = open_model(model)
    analysis = LiveAnalysis(
        loaded,
        source,
        sample_fps,
        smooth_s,
        detector,
        margin=face_margin,
        stall_s=stall_timeout,
        keep_images=bool(annotate_dir) or show,
    )
    with contextlib.ExitStack() as stack:
        stream = (
            stack.enter_context(open(output, "w", encoding="utf-8"))
            if output
            else click.get_text_stream("stdout")
        )
        written = _watch_loop(
            analysis, stream, fmt, loaded.class_names, source, annotate_dir, sample_fps, cv2
        )
    if analysis.summary is not None:
        _finish(analysis.summary, Path(report_dir) if report_dir else None, None)
    if written is not None:
        click.echo(f"annotated video: {written}", err=True)


def _watch_loop(
    analysis: Any,
    stream: TextIO,
    fmt: str,
    class_names: list[str],
    source: str,
    annotate_dir: str | None,
    sample_fps: float | None,
    cv2: Any,
) -> Path | None:
    """Consume the live analysis until it ends or is interrupted; returns the annotated video."""
    from emotion_tf.video.analyze import rows_of
    from emotion_tf.video.annotate import VideoAnnotator, draw_annotations
    from emotion_tf.video.output import RowWriter

    writer = RowWriter(stream, fmt, class_names, len(source))
    annotator = None
    status = StatusLine()
    processed = 0
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if main_thread else None
    results = iter(analysis)
    try:
        for result in results:
            processed += 1
            writer.write(rows_of(result))
            if annotate_dir and annotator is None:
                reader = analysis.reader
                fps = sample_fps or (reader.source.info.fps if reader else 0) or 25.0
                name = "camera" + source if source.isdigit() else Path(source).stem or "stream"
                target = Path(annotate_dir) / f"{name}.annotated.mp4"
                annotator = VideoAnnotator(target, fps, class_names)
            if annotator is not None:
                annotator(result)
            if cv2 is not None and result.image is not None:
                picture = cv2.cvtColor(result.image, cv2.COLOR_RGB2BGR)
                draw_annotations(picture, result, class_names)
                cv2.imshow("emotion-tf watch", picture)
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
            status(analysis, processed, result.people)
    except KeyboardInterrupt:
        click.echo("stopping (interrupted)", err=True)
    finally:
        results.close()  # stops the reader and builds the summary
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        writer.close()
    return annotator.close() if annotator is not None else None


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
