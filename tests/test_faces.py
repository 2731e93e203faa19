"""Face detection, crops and the auto/detect/none policy on photos composed at known boxes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from emotion_tf.errors import ConfigError
from emotion_tf.faces.annotate import PALETTE, Annotation, annotate_image
from emotion_tf.faces.crop import DEFAULT_MARGIN, convert_channels, crop_face, square_region
from emotion_tf.faces.detector import CASCADES, FaceBox, HaarFaceDetector
from emotion_tf.faces.detectors import get_detector
from emotion_tf.faces.locate import (
    SOURCE_CROP,
    SOURCE_DETECTOR,
    SOURCE_FALLBACK,
    locate_faces,
    looks_like_crop,
)
from emotion_tf.faces.photo import decode_photo
from emotion_tf.preprocess import decode_image
from tests.faces_helpers import clutter, detectable_faces, fer_files, paste

BOXES = [FaceBox(30, 40, 110, 110), FaceBox(230, 200, 170, 170), FaceBox(470, 60, 140, 140)]


@pytest.fixture(scope="module")
def faces(fer_dir: Path) -> list[Path]:
    found = detectable_faces(fer_dir, 4, detector="haar")
    assert len(found) == 4, "the detector found too few of the first FER2013 faces"
    return found


def best_match(truth: FaceBox, boxes: list[FaceBox]) -> float:
    return max((truth.iou(b) for b in boxes), default=0.0)


def test_opencv_ships_the_cascades() -> None:
    import cv2

    for name in CASCADES.values():
        assert (Path(cv2.data.haarcascades) / name).is_file()


@pytest.mark.shared_data
def test_several_faces_found_at_their_boxes(faces: list[Path]) -> None:
    photo = paste(clutter(1), faces[:3], BOXES)
    boxes = get_detector("haar").detect(np.asarray(photo))
    assert len(boxes) == 3, boxes
    for truth in BOXES:
        assert best_match(truth, boxes) > 0.5
    assert [b.area for b in boxes] == sorted((b.area for b in boxes), reverse=True)
    assert all(b.score is not None and b.score > 0 for b in boxes)


def test_no_face_in_clutter_or_flat_images() -> None:
    detector = get_detector("haar")
    for seed in range(4):
        assert detector.detect(np.asarray(clutter(seed))) == []
    assert detector.detect(np.full((300, 400, 3), 127, np.uint8)) == []
    assert detector.detect(np.zeros((10, 10), np.uint8)) == []  # smaller than the window


@pytest.mark.shared_data
def test_detection_recall_on_fer_faces(fer_dir: Path) -> None:
    """Most FER2013 faces pasted into a photo are found (the benchmark measures ~0.6 recall
    over all sizes; faces at 150 px on a plain background are easier)."""
    paths = fer_files(fer_dir, "validation", "happy", 20) + fer_files(
        fer_dir, "validation", "sad", 20
    )
    hits = 0
    for path in paths:
        photo = paste(clutter(9, (320, 320)), [path], [FaceBox(80, 90, 150, 150)])
        boxes = get_detector("haar").detect(np.asarray(photo))
        hits += best_match(FaceBox(80, 90, 150, 150), boxes) > 0.5
    assert hits / len(paths) > 0.45


@pytest.mark.shared_data
def test_large_photos_are_scanned_downscaled_and_boxes_mapped_back(faces: list[Path]) -> None:
    big = FaceBox(900, 700, 600, 600)
    photo = paste(clutter(2, (2400, 1800)), faces[:1], [big])
    detector = HaarFaceDetector(max_side=800)
    boxes = detector.detect(np.asarray(photo))
    assert len(boxes) == 1 and big.iou(boxes[0]) > 0.5


def test_detector_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="cascade"):
        HaarFaceDetector("nope")
    with pytest.raises(ConfigError, match="scale_factor"):
        HaarFaceDetector(scale_factor=1.0)


# -- crops --------------------------------------------------------------------------------------


def test_square_region_grows_the_longer_side_by_the_margin() -> None:
    region = square_region(FaceBox(100, 50, 40, 60), margin=0.25)
    assert (region.w, region.h) == (90, 90)
    assert region.x + region.w / 2 == pytest.approx(120, abs=1)
    assert region.y + region.h / 2 == pytest.approx(80, abs=1)
    with pytest.raises(ConfigError, match="margin"):
        square_region(FaceBox(0, 0, 4, 4), margin=-0.1)


def test_crop_at_the_border_is_square_and_padded_with_edge_pixels() -> None:
    image = np.arange(100 * 80 * 3, dtype=np.uint32).reshape(100, 80, 3).astype(np.uint8)
    crop = crop_face(image, FaceBox(-10, 60, 40, 40), margin=0.0)
    assert crop.shape == (40, 40, 3)
    np.testing.assert_array_equal(crop[:, :10], np.repeat(crop[:, 10:11], 10, axis=1))
    np.testing.assert_array_equal(crop[0, 10:], image[60, :30])
    with pytest.raises(ConfigError, match="outside"):
        crop_face(image, FaceBox(500, 500, 10, 10), margin=0.0)


def test_crop_channels_match_the_training_decode_path() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    encoded = tf.io.encode_png(rgb).numpy()
    expected = decode_image(tf.constant(encoded), 1).numpy()
    np.testing.assert_array_equal(convert_channels(rgb, 1), expected)
    gray = expected
    np.testing.assert_array_equal(convert_channels(gray, 3), np.repeat(gray, 3, axis=-1))
    assert crop_face(rgb, FaceBox(4, 4, 16, 16), 0.0, channels=1).shape == (16, 16, 1)


@pytest.mark.shared_data
def test_default_margin_frames_faces_like_fer_crops(faces: list[Path]) -> None:
    """With the default margin, the crop around a detected face covers the pasted FER crop."""
    photo = paste(clutter(3), faces[:3], BOXES)
    boxes = get_detector("haar").detect(np.asarray(photo))
    for truth in BOXES:
        best = max(boxes, key=truth.iou)
        assert square_region(best, DEFAULT_MARGIN).iou(truth) > 0.6


# -- the auto / detect / none policy -----------------------------------------------------------


@pytest.mark.shared_data
def test_auto_uses_small_square_crops_whole(fer_dir: Path) -> None:
    """A FER2013 crop where the detector finds nothing is read whole; where it finds the face,
    the face is cut with the detector's framing like any other."""
    crops = [
        decode_photo(path.read_bytes(), 1) for path in fer_files(fer_dir, "validation", "sad", 12)
    ]
    assert crops[0].shape == (48, 48, 1)
    regions = [locate_faces(crop, "auto", detector="haar") for crop in crops]
    whole = [r for r in regions if r[0].source == SOURCE_CROP]
    assert whole and all(r[0].box.as_list() == [0, 0, 48, 48] for r in whole)
    found = [r for r in regions if r[0].source == SOURCE_DETECTOR]
    assert len(whole) + len(found) == len(crops)
    assert locate_faces(crops[0], "none", detector="haar")[0].box.as_list() == [0, 0, 48, 48]


@pytest.mark.shared_data
def test_auto_detects_in_photos_and_reports_no_face(faces: list[Path]) -> None:
    photo = np.asarray(paste(clutter(4), faces[:2], BOXES[:2]))
    regions = locate_faces(photo, "auto", detector="haar")
    assert [r.source for r in regions] == [SOURCE_DETECTOR] * 2
    assert locate_faces(np.asarray(clutter(5)), "auto") == []
    assert locate_faces(np.asarray(clutter(5)), "detect") == []
    [fallback] = locate_faces(np.asarray(clutter(5)), "auto", fallback="whole-image")
    assert fallback.source == SOURCE_FALLBACK and fallback.box.as_list() == [0, 0, 640, 480]
    with pytest.raises(ConfigError, match="faces"):
        locate_faces(photo, "sometimes")


@pytest.mark.shared_data
def test_a_large_close_up_is_cropped_by_its_detector(fer_dir: Path) -> None:
    """A face filling a 400 px frame: found by the padded second scan, and `auto` cuts it as
    `detect` does (one box covering most of the image), not whole."""
    close_ups = []
    for path in fer_files(fer_dir, "validation", "happy", 10):
        with Image.open(path) as face:
            close_ups.append(np.asarray(face.convert("RGB").resize((400, 400), Image.BICUBIC)))
    found = [locate_faces(c, "detect", detector="haar") for c in close_ups]
    assert sum(len(f) == 1 for f in found) >= 6
    for close_up, detected in zip(close_ups, found):
        if len(detected) == 1:
            assert detected[0].source == SOURCE_DETECTOR and detected[0].box.w > 250
            assert locate_faces(close_up, "auto", detector="haar") == detected
    plain = HaarFaceDetector(border_retry=0.0)
    assert sum(len(plain.detect(c)) == 1 for c in close_ups) < sum(len(f) == 1 for f in found)


def test_looks_like_crop_rules() -> None:
    assert looks_like_crop((48, 48, 1), [])
    assert looks_like_crop((120, 100, 3), [])  # small, 6:5
    assert not looks_like_crop((120, 40, 3), [])  # a strip, not a face crop
    assert not looks_like_crop((200, 200, 3), [])  # larger and no face: a photo
    # Any face found is cropped with the detector's framing, even one that fills the image.
    assert not looks_like_crop((120, 120, 3), [FaceBox(8, 8, 100, 100)])
    assert not looks_like_crop((400, 400, 3), [FaceBox(10, 10, 300, 300)])
    assert not looks_like_crop((100, 100, 3), [FaceBox(0, 0, 30, 30), FaceBox(50, 50, 30, 30)])


@pytest.mark.shared_data
def test_exif_rotated_photo_is_turned_upright_before_detection(faces: list[Path]) -> None:
    photo = paste(clutter(1), faces[:3], BOXES)  # the photo of test_several_faces...
    sideways = photo.transpose(Image.Transpose.ROTATE_90)  # as a camera held sideways stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to view"
    buffer = io.BytesIO()
    sideways.save(buffer, format="JPEG", quality=95, exif=exif)
    upright = decode_photo(buffer.getvalue(), 3)
    assert upright.shape == (480, 640, 3)
    boxes = get_detector("haar").detect(upright)
    assert len(boxes) == 3 and all(best_match(truth, boxes) > 0.5 for truth in BOXES)
    as_stored = decode_image(tf.constant(buffer.getvalue()), 3).numpy()
    assert len(get_detector("haar").detect(as_stored)) < 3  # sideways faces are missed


def test_annotation_draws_boxes_in_the_class_colour() -> None:
    image = np.full((200, 300, 3), 255, np.uint8)
    picture = np.asarray(annotate_image(image, [Annotation([50, 60, 80, 90], "sad 0.91", 1)]))
    assert picture.shape == image.shape
    assert tuple(picture[100, 50]) == PALETTE[1]  # left edge of the box
    assert tuple(picture[100, 90]) == (255, 255, 255)  # inside the box untouched
    banner = np.asarray(annotate_image(image, [], banner="no face found"))
    assert (banner[:5, :5] != 255).any()
