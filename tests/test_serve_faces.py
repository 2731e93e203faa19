"""`emotion-tf serve --faces`: each request image is reduced to its largest face crop."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from emotion_tf.faces.detector import FaceBox
from emotion_tf.serve.faces import largest_face_hook
from tests.faces_helpers import clutter, detectable_faces, paste


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_no_face_is_a_clear_error():
    hook = largest_face_hook(channels=1, size=48, mode="detect")
    with pytest.raises(ValueError, match="no face found"):
        hook(_png(clutter(3)))


def test_undecodable_bytes_are_a_clear_error():
    with pytest.raises(ValueError, match="not a decodable"):
        largest_face_hook(channels=1, size=48, mode="detect")(b"not an image")


def test_mode_none_passes_the_whole_image_as_the_crop():
    crop = largest_face_hook(channels=3, size=32, mode="none")(_png(clutter(4, (80, 60))))
    with Image.open(io.BytesIO(crop)) as image:
        assert image.size == (32, 32) and image.mode == "RGB"


@pytest.mark.shared_data
def test_largest_face_is_cropped_from_a_photo(fer_dir):
    small, large = detectable_faces(fer_dir, 2)
    boxes = [FaceBox(40, 60, 150, 150), FaceBox(330, 120, 220, 220)]
    photo = paste(clutter(5), [small, large], boxes)
    crop = largest_face_hook(channels=1, size=48, mode="detect")(_png(photo))
    with Image.open(io.BytesIO(crop)) as image, Image.open(large) as truth:
        got = np.asarray(image.convert("L"), np.float32)
        want = np.asarray(truth.convert("L").resize((48, 48)), np.float32)
    other = np.asarray(Image.open(small).convert("L").resize((48, 48)), np.float32)
    # The crop is the larger face (close to its source), not the smaller one.
    assert np.abs(got - want).mean() < np.abs(got - other).mean()
