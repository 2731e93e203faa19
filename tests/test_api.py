"""The Python API: every input kind, a bad input of each kind, batches that go on past a bad
item, per-face and per-photo answers, and the README / docs/api.md examples."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import emotion_tf
from emotion_tf.api import EmotionModel, FacePrediction, ImagePrediction, PhotoPrediction
from emotion_tf.errors import ConfigError, InputError, ModelDirError
from emotion_tf.packaged.build import pack_run
from tests.packaged_helpers import tiny_last_run


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory, tiny_data_dir: Path) -> EmotionModel:
    run = tiny_last_run(tmp_path_factory, tiny_data_dir)
    packed = pack_run(run, tmp_path_factory.mktemp("api") / "tiny.npz")
    return emotion_tf.load(packed.path)


@pytest.fixture(scope="module")
def face(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo face saved as PNG, so every decoder sees the same pixels."""
    source = sorted((tiny_data_dir / "validation" / "happy").glob("*.jpg"))[0]
    target = tmp_path_factory.mktemp("face") / "face.png"
    with Image.open(source) as image:
        image.convert("RGB").save(target)
    return target


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_every_input_kind_gives_the_same_answer_for_the_same_picture(model, face) -> None:
    rgb = _rgb(face)
    png = io.BytesIO()
    Image.fromarray(rgb).save(png, format="PNG")
    inputs = [str(face), face, png.getvalue(), Image.fromarray(rgb), rgb]
    results = model.predict(inputs, batch_size=2, faces="none")
    assert [r.input for r in results] == [
        str(face),
        str(face),
        "<bytes 2>",
        "<PIL image 3>",
        "<array 4>",
    ]
    first = results[0].faces[0]
    assert isinstance(first, FacePrediction) and first.source == "crop"
    assert first.box == [0, 0, rgb.shape[1], rgb.shape[0]]
    assert first.label in model.class_names and first.label == max(
        first.probabilities, key=first.probabilities.get
    )
    for result in results[1:]:
        assert result.ok and len(result.faces) == 1
        for name in model.class_names:
            assert result.faces[0].probabilities[name] == pytest.approx(
                first.probabilities[name], abs=1e-5
            )


def test_gray_inputs_are_accepted_in_every_form(model, face) -> None:
    gray = np.asarray(Image.fromarray(_rgb(face)).convert("L"))
    results = model.predict(
        [gray, gray[..., None], Image.fromarray(gray), np.dstack([gray] * 3 + [gray])],
        faces="none",
    )
    assert all(r.ok and len(r.faces) == 1 for r in results)
    assert results[0].faces[0].probabilities == pytest.approx(results[1].faces[0].probabilities)
    assert results[0].faces[0].probabilities == pytest.approx(results[2].faces[0].probabilities)


def test_a_folder_expands_to_its_images_in_order(model, tiny_data_dir: Path) -> None:
    folder = tiny_data_dir / "validation" / "sad"
    results = model.predict(folder, faces="none", batch_size=5)
    assert isinstance(results, list) and len(results) == len(list(folder.iterdir()))
    assert [r.input for r in results] == sorted(r.input for r in results)
    assert all(r.ok for r in results)


def test_a_bad_item_of_each_kind_gets_its_error_and_the_rest_are_answered(
    model, face, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    good = _rgb(face)
    inputs = [
        good,
        str(tmp_path / "missing.jpg"),
        empty,
        b"not an image at all",
        np.zeros((10, 10), np.complex64),
        Image.new("RGB", (4000, 3000)),
        object(),
        str(face),
    ]
    results = model.predict(inputs, faces="none", max_pixels=1_000_000, batch_size=2)
    errors = [r.error for r in results]
    assert errors[0] is None and errors[-1] is None
    assert "no such file or folder" in errors[1]
    assert "folder has no image files" in errors[2]
    assert "not an image" in errors[3]
    assert "of numbers" in errors[4] and "complex64" in errors[4]
    assert "too large: 4000x3000" in errors[5]
    assert "Received: object" in errors[6]
    assert results[-1].faces[0].probabilities == pytest.approx(results[0].faces[0].probabilities)


def test_one_bad_input_raises_the_typed_error_naming_it(model, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"<array 0>: expected an array \[H, W\]"):
        model.predict(np.zeros((3, 3, 2), np.uint8))
    with pytest.raises(InputError, match="missing.png: no such file"):
        model.predict_photo(str(tmp_path / "missing.png"))
    with pytest.raises(ConfigError, match="faces must be one of"):
        model.predict(np.zeros((8, 8), np.uint8), faces="sometimes")
    with pytest.raises(ConfigError, match="batch_size"):
        model.predict([np.zeros((8, 8), np.uint8)], batch_size=0)
    with pytest.raises(ModelDirError, match="not found"):
        emotion_tf.load(tmp_path / "nothing.npz")


def test_predict_photo_gives_one_answer_per_photo(model, face) -> None:
    one = model.predict_photo(_rgb(face), faces="none")
    assert isinstance(one, PhotoPrediction) and one.ok and one.faces == 1
    blank = np.full((300, 400, 3), 200, np.uint8)  # no face: an answer that says so
    none_found = model.predict_photo(blank, faces="detect", fallback="none")
    assert none_found.no_face and none_found.error is None and none_found.label is None
    by_default = model.predict_photo(blank, faces="detect")  # second look, else whole
    assert by_default.ok and by_default.source in ("whole-image", "second-look")
    whole = model.predict_photo(blank, faces="detect", fallback="whole-image")
    assert whole.ok and whole.box == [0, 0, 400, 300]
    per_face = model.predict(blank, faces="detect", fallback="none")
    assert isinstance(per_face, ImagePrediction) and per_face.faces == [] and per_face.ok
    assert per_face.no_face
    assert set(one.to_dict()) == {
        "input",
        "label",
        "confidence",
        "probabilities",
        "box",
        "faces",
        "error",
        "no_face",
        "source",
        "rule",
    }
