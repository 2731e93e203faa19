"""Link the faces of consecutive frames into tracks with stable person ids.

On every frame the face detector scans only a small window around where each tracked face is
expected (its last box moved by its velocity), downscaled so the face is about
`window_face_px` pixels wide. Every `rescan_s` seconds, and whenever nobody is being tracked,
it also scans the whole frame for new people, downscaled so that the smallest face it looks
for (`min_face_px`, like the `fer` package's 50 px) is the detector's smallest window: that
scan costs about as much as all the windows of a second together. Candidates are matched to
tracks greedily by overlap with the expected boxes; new people are only taken from
whole-frame scans. A face that stays hidden (e.g. behind another one that crosses it) keeps
moving at its last velocity for up to `max_missing_s` seconds before its track ends. Faces
are looked for at most every `detect_interval_s` (1/20 s): on the frames in between (every
other frame of a 30 frames/s video), the faces found last time are where their velocity puts
them. Any detector with `detect(image) -> list[FaceBox]` (emotion_tf.faces.locate.Detector)
works.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from emotion_tf.errors import ConfigError
from emotion_tf.faces.detector import FaceBox, HaarFaceDetector
from emotion_tf.faces.detectors import VIDEO_DEFAULT_DETECTOR
from emotion_tf.faces.locate import Detector, resolve_detector
from emotion_tf.faces.union import UnionDetector

# A face in a window is looked for between these multiples of its size on the last frame (at
# 30 frames/s a face rarely changes size by 5% from one frame to the next; one that does is
# picked up again by the next whole-frame scan). The span costs more than the window's pixels:
# OpenCV builds an image for each scanned size, so 0.65-1.5 cost twice as much.
WINDOW_SIZES = (0.8, 1.25)
# Whole-frame scans only look for people who are not tracked yet, and a face missed by one
# scan is found by the next: they step through face sizes in 20% steps instead of the Haar
# detector's 10% (on a 640x480 frame, 21 instead of 31 CPU ms; the same faces found).
DISCOVERY_SCALE_FACTOR = 1.2
# Detectors that take the Haar scan options above (a union passes them to its Haar member).
HAAR_TUNABLE = (HaarFaceDetector, UnionDetector)


@dataclasses.dataclass
class Track:
    """One person followed over time: id (1, 2, ... in order of appearance), last box."""

    person: int
    box: FaceBox
    time_s: float
    first_time_s: float
    velocity: tuple[float, float] = (0.0, 0.0)  # box centre, pixels per second

    def expected_box(self, time_s: float) -> FaceBox:
        """The last box moved by the velocity to `time_s`."""
        dt = time_s - self.time_s
        dx, dy = self.velocity[0] * dt, self.velocity[1] * dt
        return FaceBox(round(self.box.x + dx), round(self.box.y + dy), self.box.w, self.box.h)

    def move_to(self, box: FaceBox, time_s: float) -> None:
        dt = time_s - self.time_s
        if dt > 0:
            cx0, cy0 = _centre(self.box)
            cx1, cy1 = _centre(box)
            measured = ((cx1 - cx0) / dt, (cy1 - cy0) / dt)
            self.velocity = (
                0.5 * self.velocity[0] + 0.5 * measured[0],
                0.5 * self.velocity[1] + 0.5 * measured[1],
            )
        self.box, self.time_s = box, time_s


def _centre(box: FaceBox) -> tuple[float, float]:
    return box.x + box.w / 2.0, box.y + box.h / 2.0


def match_score(expected: FaceBox, candidate: FaceBox) -> float:
    """How well `candidate` continues a track expected at `expected`: overlap, or for boxes
    that do not overlap, closeness of the centres relative to the face size; 0 = no match."""
    iou = expected.iou(candidate)
    (ex, ey), (cx, cy) = _centre(expected), _centre(candidate)
    distance = math.hypot(ex - cx, ey - cy) / max(expected.w, expected.h, 1)
    size = max(candidate.w, 1) / max(expected.w, 1)
    if distance > 0.75 or not 0.6 <= size <= 1.6:
        return 0.0
    return iou + 0.5 * (1.0 - distance / 0.75)


def dedupe(boxes: list[FaceBox], overlap: float = 0.4) -> list[FaceBox]:
    """Drop boxes that overlap an earlier one by more than `overlap` IoU (keeps the first)."""
    kept: list[FaceBox] = []
    for box in boxes:
        if all(box.iou(other) <= overlap for other in kept):
            kept.append(box)
    return kept


class FaceTracker:
    """Feed frames in time order to `update`; get (person id, box) for each face seen."""

    def __init__(
        self,
        detector: Detector | None = None,
        rescan_s: float = 0.5,
        max_missing_s: float = 2.0,
        min_face_px: int = 48,
        window_scale: float = 2.0,
        window_face_px: int = 40,
        detect_interval_s: float = 0.05,
    ):
        if rescan_s < 0 or max_missing_s < 0 or detect_interval_s < 0:
            raise ConfigError(
                "rescan_s, max_missing_s and detect_interval_s must be >= 0. "
                f"Received: rescan_s={rescan_s}, max_missing_s={max_missing_s}, "
                f"detect_interval_s={detect_interval_s}"
            )
        if min_face_px < 8:
            raise ConfigError(f"min_face_px must be >= 8. Received: min_face_px={min_face_px}")
        self.detector = detector or resolve_detector(VIDEO_DEFAULT_DETECTOR)
        self.rescan_s = rescan_s
        self.max_missing_s = max_missing_s
        self.min_face_px = min_face_px
        self.window_scale = window_scale
        self.window_face_px = window_face_px
        self.detect_interval_s = detect_interval_s
        self.tracks: list[Track] = []
        self._next_person = 1
        self._last_scan: float | None = None
        self._last_detect: float | None = None
        self._last_found: set[int] = set()  # the people the last detection found
        self.full_scans = 0
        self.window_scans = 0

    def update(self, image: np.ndarray, time_s: float) -> list[tuple[int, FaceBox]]:
        """(person, box) of the faces found in `image` (taken at `time_s`), largest first."""
        self.tracks = [t for t in self.tracks if time_s - t.time_s <= self.max_missing_s]
        full = (
            not self.tracks
            or self._last_scan is None
            or time_s - self._last_scan >= self.rescan_s - 1e-9
        )
        if not full and self._holds(time_s):
            return self._held(time_s)
        self._last_detect = time_s
        matched: list[tuple[int, FaceBox]] = []
        if self.tracks:
            matched = self._assign(self._scan_windows(image, self.tracks, time_s), time_s)[0]
        unused: list[FaceBox] = []
        if full:
            self._last_scan = time_s
            unused = _apart(self._scan_frame(image), matched)
            seen = {person for person, _ in matched}
            lost = [t for t in self.tracks if t.person not in seen]
            if lost:  # a face its window missed (a fast move, a crossing) is picked up again
                found, unused = self._assign(unused, time_s, tracks=lost)
                matched += found
        for box in _apart(unused, matched):  # new faces; not a second box on a known one
            track = Track(self._next_person, box, time_s, time_s)
            self._next_person += 1
            self.tracks.append(track)
            matched.append((track.person, box))
        self._last_found = {person for person, _ in matched}
        return sorted(matched, key=lambda item: (-item[1].area, item[0]))

    def _holds(self, time_s: float) -> bool:
        """Whether this frame comes too soon after the last detection to run another."""
        return (
            self._last_detect is not None
            and 0 <= time_s - self._last_detect < self.detect_interval_s - 1e-9
        )

    def _held(self, time_s: float) -> list[tuple[int, FaceBox]]:
        """The faces found by the last detection, moved by their velocity to `time_s`."""
        held = [
            (t.person, t.expected_box(time_s)) for t in self.tracks if t.person in self._last_found
        ]
        return sorted(held, key=lambda item: (-item[1].area, item[0]))

    def _scan_frame(self, image: np.ndarray) -> list[FaceBox]:
        import cv2

        self.full_scans += 1
        height, width = image.shape[:2]
        smallest = getattr(self.detector, "min_size", None)  # None: the detector rescales itself
        scale = min(1.0, smallest / self.min_face_px) if smallest else 1.0
        if scale < 1.0:
            image = cv2.resize(
                image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
            )
        return dedupe([_scaled(b, 1.0 / scale, 0, 0) for b in self._detect_frame(image)])

    def _scan_windows(self, image: np.ndarray, tracks: list[Track], time_s: float) -> list[FaceBox]:
        import cv2

        height, width = image.shape[:2]
        found: list[FaceBox] = []
        for track in tracks:
            expected = track.expected_box(time_s)
            side = self.window_scale * max(expected.w, expected.h)
            cx, cy = _centre(expected)
            x0, y0 = max(0, round(cx - side / 2)), max(0, round(cy - side / 2))
            x1, y1 = min(width, round(cx + side / 2)), min(height, round(cy + side / 2))
            if x1 - x0 < 8 or y1 - y0 < 8:
                continue
            self.window_scans += 1
            scale = min(1.0, self.window_face_px / max(expected.w, expected.h, 1))
            window = image[y0:y1, x0:x1]
            if scale < 1.0:
                window = cv2.resize(
                    window,
                    (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))),
                    interpolation=cv2.INTER_AREA,
                )
            face_px = scale * max(expected.w, expected.h)
            boxes = self._detect_window(window, face_px)
            found += [_scaled(b, 1.0 / scale, x0, y0) for b in boxes]
        return dedupe(sorted(found, key=lambda b: -(b.score or 0.0)))

    def _detect_frame(self, image: np.ndarray) -> list[FaceBox]:
        """The detector on a whole (downscaled) frame, looking for new faces."""
        if isinstance(self.detector, HAAR_TUNABLE):
            # The frame is already scaled for `min_face_px` (`_scan_frame`): no second shrink,
            # so the smallest face found is the same at 720p, 1080p and 4K.
            return self.detector.detect(image, scale_factor=DISCOVERY_SCALE_FACTOR, max_side=0)
        return self.detector.detect(image)

    def _detect_window(self, window: np.ndarray, face_px: float) -> list[FaceBox]:
        """The detector on a window where a face of about `face_px` pixels is expected (the
        Haar detector then scans only sizes near it)."""
        if isinstance(self.detector, HAAR_TUNABLE):
            sizes = (round(WINDOW_SIZES[0] * face_px), round(WINDOW_SIZES[1] * face_px))
            return self.detector.detect(window, face_sizes=sizes)
        return self.detector.detect(window)

    def _assign(
        self, candidates: list[FaceBox], time_s: float, tracks: list[Track] | None = None
    ) -> tuple[list[tuple[int, FaceBox]], list[FaceBox]]:
        """Match candidates to tracks (best continuations first) and move the matched tracks;
        returns the (person, box) pairs and the candidates left over."""
        tracks = self.tracks if tracks is None else tracks
        expected = [t.expected_box(time_s) for t in tracks]
        pairs = sorted(
            (
                (match_score(e, c), ti, ci)
                for ti, e in enumerate(expected)
                for ci, c in enumerate(candidates)
            ),
            reverse=True,
        )
        used_tracks: set[int] = set()
        used_candidates: set[int] = set()
        matched: list[tuple[int, FaceBox]] = []
        for score, ti, ci in pairs:
            if score <= 0 or ti in used_tracks or ci in used_candidates:
                continue
            used_tracks.add(ti)
            used_candidates.add(ci)
            tracks[ti].move_to(candidates[ci], time_s)
            matched.append((tracks[ti].person, candidates[ci]))
        unused = [c for ci, c in enumerate(candidates) if ci not in used_candidates]
        return matched, unused


def _apart(boxes: list[FaceBox], matched: list[tuple[int, FaceBox]]) -> list[FaceBox]:
    """The boxes that are not on a face already matched (overlap, or centre inside it)."""
    taken = [box for _, box in matched]
    return [
        box
        for box in boxes
        if all(box.iou(other) <= 0.3 and not _inside(_centre(box), other) for other in taken)
        and all(not _inside(_centre(other), box) for other in taken)
    ]


def _inside(point: tuple[float, float], box: FaceBox) -> bool:
    return box.x <= point[0] <= box.x + box.w and box.y <= point[1] <= box.y + box.h


def _scaled(box: FaceBox, factor: float, dx: int, dy: int) -> FaceBox:
    return FaceBox(
        round(box.x * factor) + dx,
        round(box.y * factor) + dy,
        max(1, round(box.w * factor)),
        max(1, round(box.h * factor)),
        box.score,
    )
