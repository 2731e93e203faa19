"""Frame by frame: find and track the faces, classify each one, smooth per person.

`analyze_video(model, "clip.mp4")` is the Python API: iterate it for one `FrameResult` per
processed frame, in frame order (a file's frames come a batch of 16 at a time); afterwards
`.summary` holds the per-video and per-person summary. `FrameAnalyzer` locates, classifies and
smooths; it is shared by `predict` on files and `watch` on live sources, so both give the
same rows for the same frames (up to float rounding: a file's faces are batched).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from emotion_tf.faces.crop import crop_face, framing_of
from emotion_tf.faces.detector import FaceBox
from emotion_tf.faces.locate import Detector, resolve_detector
from emotion_tf.video.prefetch import Prefetch
from emotion_tf.video.smoothing import DEFAULT_SMOOTH_S, LabelChange, Smoother
from emotion_tf.video.source import DEFAULT_SAMPLE_FPS, Frame, Sampler, VideoInfo, VideoSource
from emotion_tf.video.summary import SummaryBuilder, VideoSummary
from emotion_tf.video.tracking import FaceTracker

# Frames whose faces go to the classifier in one batch when a file is analysed.
DEFAULT_BATCH_FRAMES = 16

# The most bytes of decoded frames waiting between the reader and the classifier.
FRAME_QUEUE_BYTES = 256 * 1024 * 1024


class Classifier(Protocol):
    """What the analyzer needs of a model (`emotion_tf.export.LoadedExport` has it)."""

    class_names: list[str]
    input_size: int
    channels: int

    def predict_images(self, images: Any) -> dict[str, Any]: ...


def alternates_views(model: Classifier, smooth_s: float) -> bool:
    """Whether a person's frames are classified one view each, mirrored every other frame.

    A model with test-time flip runs two forward passes per face; with smoothing on, the
    window already averages a person's frames, so one pass per frame on alternately mirrored
    crops gives the same average at half the classifier's cost. The model must offer
    `predict_one_view` (`has_one_view`); `--smooth 0` keeps both views on every frame.
    """
    return smooth_s > 0 and bool(getattr(model, "has_one_view", False))


@dataclasses.dataclass
class PersonResult:
    """One face in one frame: the person's id, its box, the smoothed prediction (label,
    confidence, probabilities), the frame's own probabilities, and a label change if the
    smoothed label changed at this frame."""

    person: int
    box: FaceBox
    label: str
    confidence: float
    probabilities: dict[str, float]
    raw_probabilities: dict[str, float]
    change: LabelChange | None = None


@dataclasses.dataclass
class FrameResult:
    """The faces of one processed frame (empty when none was found)."""

    source: str
    frame: int
    time_s: float
    people: list[PersonResult]
    image: np.ndarray | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass
class VideoRow:
    """One person in one frame, or (with `error`) why a video gave no rows."""

    path: str
    time_s: float | None = None
    frame: int | None = None
    person: int | None = None
    box: list[int] | None = None
    label: str | None = None
    confidence: float | None = None
    probabilities: dict[str, float] | None = None
    raw_probabilities: dict[str, float] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def rows_of(result: FrameResult) -> list[VideoRow]:
    return [
        VideoRow(
            result.source,
            result.time_s,
            result.frame,
            person.person,
            person.box.as_list(),
            person.label,
            round(person.confidence, 6),
            {k: round(v, 6) for k, v in person.probabilities.items()},
            {k: round(v, 6) for k, v in person.raw_probabilities.items()},
        )
        for person in result.people
    ]


@dataclasses.dataclass
class LocatedFaces:
    """A frame's tracked faces and their crops, ready for the classifier."""

    frame: Frame
    found: list[tuple[int, FaceBox]]
    crops: np.ndarray  # uint8 [faces, size, size, channels]


class FrameAnalyzer:
    """Detect, track, classify and smooth the faces of frames given in time order."""

    def __init__(
        self,
        model: Classifier,
        detector: Detector | str | None = None,
        smooth_s: float = DEFAULT_SMOOTH_S,
        margin: float | None = None,
        tracker: FaceTracker | None = None,
    ):
        """`detector`: an object, a name (`--detector`) or None (the default detector);
        `margin`: the crop's margin around each box, or None to frame faces as FER2013 crops
        are framed for that detector (`emotion_tf.faces.crop.FRAMINGS`)."""
        if smooth_s < 0:
            from emotion_tf.errors import ConfigError

            raise ConfigError(f"smooth must be >= 0 seconds. Received: smooth={smooth_s}")
        self.model = model
        self.class_names = list(model.class_names)
        self.smooth_s = smooth_s
        self.margin = margin
        self.tracker = tracker or FaceTracker(resolve_detector(detector) if detector else None)
        self.framing = framing_of(self.tracker.detector)
        self.alternate_views = alternates_views(model, smooth_s)
        self._smoothers: dict[int, Smoother] = {}
        self._views: dict[int, int] = {}  # person -> crops cut so far (odd ones are mirrored)

    def __call__(self, source: str, frame: Frame) -> FrameResult:
        """Locate, classify and smooth one frame (the live path: one frame at a time)."""
        located = self.locate(frame)
        return self.finish(source, located, self.classify(located.crops))

    def locate(self, frame: Frame) -> LocatedFaces:
        """Track the faces of `frame` and cut each one out at the model's input size."""
        found = self.tracker.update(frame.image, frame.time_s)
        size, channels = self.model.input_size, self.model.channels
        crops = np.zeros((len(found), size, size, channels), np.uint8)
        for i, (person, box) in enumerate(found):
            crop = resize_crop(crop_face(frame.image, box, self.margin, framing=self.framing), size)
            crops[i] = to_model_channels(crop, channels)
            if self.alternate_views:
                views = self._views.get(person, 0)
                self._views[person] = views + 1
                if views % 2:
                    crops[i] = crops[i, :, ::-1]
        return LocatedFaces(frame, found, crops)

    def classify(self, crops: np.ndarray) -> np.ndarray:
        """Class probabilities of model-sized uint8 crops (any number, in one batch)."""
        if len(crops) == 0:
            return np.zeros((0, len(self.class_names)))
        if self.alternate_views:
            outputs = self.model.predict_one_view(crops)  # type: ignore[attr-defined]
        else:
            outputs = self.model.predict_images(crops)
        return np.asarray(outputs["probabilities"], dtype=np.float64)

    def finish(self, source: str, located: LocatedFaces, probabilities: np.ndarray) -> FrameResult:
        """Smooth each person's probabilities and build the frame's result (frames in order)."""
        frame = located.frame
        people: list[PersonResult] = []
        for (person, box), raw in zip(located.found, probabilities):
            smoother = self._smoothers.setdefault(person, Smoother(self.class_names, self.smooth_s))
            smoothed, change = smoother.update(frame.time_s, frame.index, raw)
            best = int(np.argmax(smoothed))
            people.append(
                PersonResult(
                    person,
                    box,
                    self.class_names[best],
                    float(smoothed[best]),
                    dict(zip(self.class_names, map(float, smoothed))),
                    dict(zip(self.class_names, map(float, raw))),
                    change,
                )
            )
        return FrameResult(source, frame.index, frame.time_s, people, frame.image)

    def warm_up(self) -> None:
        """Run the classifier and the detector once, so the first real frame is not slow
        (a live source would drop frames while TensorFlow traces the model)."""
        size, channels = self.model.input_size, self.model.channels
        blank = np.zeros((1, size, size, channels), np.uint8)
        self.classify(blank)
        self.classify(np.concatenate([blank, blank]))
        self.tracker.detector.detect(np.zeros((64, 64, 3), np.uint8))


# TF's rgb_to_grayscale weights; with its uint8 <-> float conversions (x / 255, then x * 255.5
# truncated) the result equals `emotion_tf.faces.crop.convert_channels` bit for bit, at a
# fiftieth of the cost of the eager TF op.
_GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], np.float32)


def to_model_channels(crop: np.ndarray, channels: int) -> np.ndarray:
    """An RGB uint8 crop as the model's channels (1: TF's grayscale conversion, exactly)."""
    if channels == 3:
        return crop
    gray = (crop.astype(np.float32) * np.float32(1 / 255)) @ _GRAY_WEIGHTS
    return (gray * np.float32(255.5)).astype(np.uint8)[..., None]


def resize_crop(crop: np.ndarray, size: int) -> np.ndarray:
    """An RGB uint8 crop resized to size x size with OpenCV: area averaging when it shrinks
    (antialiased, like the export's resize), bilinear when it grows. A tenth of the cost of
    TensorFlow's antialiased resize per crop, which matters at 30 frames per second."""
    import cv2

    if crop.shape[0] == size and crop.shape[1] == size:
        return crop
    shrink = crop.shape[0] > size or crop.shape[1] > size
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)


class VideoAnalysis:
    """Iterate for the `FrameResult`s of one video file; then read `summary`.

    Decoding and tracking run in a background thread ahead of the classifier, which takes the
    faces of `batch_frames` frames in one batch (several times cheaper per face than one call
    per frame); results come out in frame order, a batch at a time.
    Raises `emotion_tf.errors.VideoError` when the file cannot be opened or has no frames.
    """

    def __init__(
        self,
        model: Classifier,
        path: str | Path,
        sample_fps: float | None = DEFAULT_SAMPLE_FPS,
        smooth_s: float = DEFAULT_SMOOTH_S,
        detector: Detector | str | None = None,
        margin: float | None = None,
        keep_images: bool = False,
        batch_frames: int = DEFAULT_BATCH_FRAMES,
    ):
        if batch_frames < 1:
            from emotion_tf.errors import ConfigError

            raise ConfigError(f"batch_frames must be >= 1. Received: batch_frames={batch_frames}")
        self.path = str(path)
        self.sample_fps = sample_fps
        self.keep_images = keep_images
        self.batch_frames = batch_frames
        self.analyzer = FrameAnalyzer(model, detector, smooth_s, margin)
        self.summary: VideoSummary | None = None
        self.info: VideoInfo | None = None  # set once the file is open

    def __iter__(self) -> Iterator[FrameResult]:
        with VideoSource(self.path) as source:
            self.info = source.info
            builder = SummaryBuilder(source.info, self.analyzer.class_names, self.sample_fps)
            located = map(self.analyzer.locate, source.frames(Sampler(self.sample_fps)))
            depth = frames_in_flight(source.info, 2 * self.batch_frames)
            with Prefetch(located, depth=depth) as ahead:
                for batch in _batches(ahead, self.batch_frames):
                    for result in self._classified(batch):
                        builder.add(result)
                        if not self.keep_images:
                            result.image = None
                        yield result
            self.summary = builder.build(source.stats, truncated=source.ended_early)

    def _classified(self, batch: list[LocatedFaces]) -> Iterator[FrameResult]:
        probabilities = self.analyzer.classify(np.concatenate([item.crops for item in batch]))
        start = 0
        for item in batch:
            end = start + len(item.found)
            yield self.analyzer.finish(self.path, item, probabilities[start:end])
            start = end


def frames_in_flight(info: VideoInfo, wanted: int) -> int:
    """How many decoded frames may wait in the prefetch queue: `wanted`, fewer when their
    pixels would pass FRAME_QUEUE_BYTES (at least 1)."""
    frame_bytes = max(1, info.width * info.height * 3)
    return max(1, min(wanted, FRAME_QUEUE_BYTES // frame_bytes))


def _batches(items: Iterable[LocatedFaces], size: int) -> Iterator[list[LocatedFaces]]:
    """Consecutive lists of `size` items (the last one shorter): fixed batches, so the same
    video always gives the same numbers."""
    batch: list[LocatedFaces] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def analyze_video(
    model: Classifier,
    path: str | Path,
    sample_fps: float | None = DEFAULT_SAMPLE_FPS,
    smooth_s: float = DEFAULT_SMOOTH_S,
    detector: Detector | str | None = None,
    margin: float | None = None,
) -> VideoAnalysis:
    """The frames of the video at `path`, analysed one by one as the caller iterates.

    `sample_fps`: frames per second to process (None: every frame); `smooth_s`: the
    smoothing window in seconds (0: off). Example::

        analysis = analyze_video(LoadedExport("runs/default"), "clip.mp4")
        for result in analysis:
            for person in result.people:
                print(result.time_s, person.person, person.label, person.confidence)
        print(analysis.summary.to_dict())
    """
    return VideoAnalysis(model, path, sample_fps, smooth_s, detector, margin)
