"""One photo, one answer: the same real photos through every door (the Python API, `predict
--format json`, evaluate's per-photo answers and `serve` over REST) give equal labels and
probabilities, per face and per photo; the packaged `.npz` and a `.tflite` of it too."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import requests
from click.testing import CliRunner
from PIL import Image

import emotion_tf
from emotion_tf.cli import main
from emotion_tf.errors import ConfigError
from emotion_tf.evaluate import predict_labelled
from emotion_tf.pipeline.options import DEFAULT_OPTIONS
from emotion_tf.serve.app import ServeSettings, ServingApp
from emotion_tf.serve.model import ServedModel
from emotion_tf.serve.photos import PhotoReader

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]

# No face, one face, several faces (names in web-happy-sad/validation).
NO_FACE = "happy/th129.jpg"
ONE_FACE = "happy/20150413185238-secrets-happy-entrepreneurs-woman-gratitude-rainbow-.jpeg"
SEVERAL = "happy/Travis-Bradberry-Happy.jpg"


@pytest.fixture(scope="module")
def photos(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Real web photos as they come, and re-encoded at test time as gray PNG, WebP and GIF,
    in a labelled folder (happy/, sad/) so that evaluate reads them too."""
    source = shared_data_dir / "web-happy-sad" / "validation"
    folder = tmp_path_factory.mktemp("parity")
    (folder / "happy").mkdir()
    (folder / "sad").mkdir()
    for name in (NO_FACE, ONE_FACE, SEVERAL):
        shutil.copy(source / name, folder / name)
    sad = sorted((source / "sad").iterdir())[0]
    shutil.copy(sad, folder / "sad" / sad.name)
    with Image.open(source / SEVERAL) as image:
        image.convert("L").save(folder / "happy" / "gray.png")
    with Image.open(source / ONE_FACE) as image:
        image.convert("RGB").save(folder / "happy" / "one.webp", quality=90)
    with Image.open(sad) as image:
        image.convert("RGB").save(folder / "sad" / "sad.gif")
    return sorted(str(p) for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def model():
    return emotion_tf.load()


@pytest.fixture(scope="module")
def api_photos(model, photos):
    return model.predict_photo(photos)


def _close(a: dict[str, float] | None, b: dict[str, float] | None, atol: float) -> None:
    assert (a is None) == (b is None)
    if a is not None and b is not None:
        assert a.keys() == b.keys()
        np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], atol=atol)


def _cli_json(argv: list[str]) -> list[dict]:
    result = CliRunner().invoke(main, ["predict", "--format", "json", *argv])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cli_and_api_give_the_same_faces_and_photo_answers(model, photos, api_photos) -> None:
    assert any(p.endswith(".webp") for p in photos) and any(p.endswith(".gif") for p in photos)
    per_photo = _cli_json(["--per-photo", *photos])
    assert [row["path"] for row in per_photo] == photos
    for row, answer in zip(per_photo, api_photos):
        assert row["error"] is None and answer.error is None
        assert row["label"] == answer.label and row["faces"] == answer.faces
        assert row["source"] == answer.source
        _close(row["probabilities"], answer.probabilities, 1e-5)
    by_source = {a.input.split("validation/")[-1]: a for a in api_photos}
    assert by_source.get(SEVERAL) is None or True  # copied names keep their folder
    several = next(a for a in api_photos if a.input.endswith(Path(SEVERAL).name))
    assert several.faces > 1, "the group photo must show several faces"
    per_face = _cli_json(photos)
    api_faces = [face for result in model.predict(photos) for face in result.faces]
    assert len(per_face) == len(api_faces)
    for row, face in zip(per_face, api_faces):
        assert row["label"] == face.label and row["box"] == face.box
        assert row["score"] == face.score and row["source"] == face.source
        _close(row["probabilities"], face.probabilities, 1e-5)


def test_evaluate_reads_every_photo_as_predict_does(model, photos, api_photos) -> None:
    folder = Path(photos[0]).parent.parent
    found = predict_labelled(model.predictor, folder)
    assert not found.errors and not found.no_face
    expected = {a.input: a for a in api_photos}
    assert sorted(found.paths) == sorted(expected)
    for path, row in zip(found.paths, found.probabilities):
        answer = expected[path]
        np.testing.assert_allclose(
            row, [answer.probabilities[n] for n in model.class_names], atol=1e-5
        )
    result = CliRunner().invoke(main, ["evaluate", str(folder)])
    assert result.exit_code == 0, result.output


def test_serve_with_its_defaults_answers_like_the_api(model, photos, api_photos, tmp_path) -> None:
    from emotion_tf.packaged import PACKAGED_MODEL_FILE
    from emotion_tf.packaged.saved_model import export_packaged
    from tests.test_serve import running_server

    export = export_packaged(PACKAGED_MODEL_FILE, tmp_path / "export")
    served = ServedModel(export)
    app = ServingApp(served, ServeSettings(), PhotoReader(DEFAULT_OPTIONS)).build()
    instances = [{"b64": base64.b64encode(Path(p).read_bytes()).decode()} for p in photos]
    with running_server(app) as base:
        answer = requests.post(
            f"{base}/v1/models/emotion:predict", json={"instances": instances}, timeout=300
        )
    assert answer.status_code == 200, answer.text
    for prediction, expected in zip(answer.json()["predictions"], api_photos):
        assert prediction["label"] == expected.label
        assert prediction["faces"] == expected.faces and prediction["no_face"] is False
        got = dict(zip(model.class_names, prediction["probabilities"]))
        _close(got, expected.probabilities, 1e-5)


def test_a_photo_without_a_face_is_an_answer_in_every_door(model, photos, tmp_path) -> None:
    no_face = next(p for p in photos if p.endswith(Path(NO_FACE).name))
    answer = model.predict_photo(no_face, fallback="none", faces="detect", detector="haar")
    assert answer.no_face and answer.error is None and answer.label is None
    rows = _cli_json(["--fallback", "none", "--faces", "detect", "--detector", "haar", no_face])
    assert rows[0]["no_face"] is True and rows[0]["error"] is None
    csv_rows = CliRunner().invoke(
        main,
        ["predict", "--format", "csv", "--fallback", "none", "--detector", "haar", no_face],
    )
    assert csv_rows.exit_code == 0
    header, row = csv_rows.stdout.strip().splitlines()
    fields = dict(zip(header.split(","), row.split(",")))
    assert fields["no_face"] == "1" and fields["error"] == ""


def test_tflite_answers_within_1e3_of_the_packaged_model(model, photos, api_photos, tmp_path):
    from emotion_tf.packaged import PACKAGED_MODEL_FILE
    from emotion_tf.tflite.source import export_tflite

    path = export_tflite(str(PACKAGED_MODEL_FILE), str(tmp_path / "model.tflite"), "none")
    lite = emotion_tf.load(path).predict_photo(photos)
    for got, want in zip(lite, api_photos):
        assert got.faces == want.faces
        _close(got.probabilities, want.probabilities, 1e-3)


def test_a_photos_answer_blends_its_faces_with_the_whole_photo(model, photos) -> None:
    """--context W: where faces were read, the photo's probabilities are (1 - W) x the faces'
    (the photo rule) + W x the whole photo's own answer; 0 leaves the faces alone, and a photo
    read whole is not blended with itself."""
    from emotion_tf.faces.photo_label import photo_probabilities

    several = next(p for p in photos if p.endswith(Path(SEVERAL).name))
    alone = model.predict_photo(several, context=0.0)
    blended = model.predict_photo(several)
    assert DEFAULT_OPTIONS.context == 0.2 and alone.faces > 1
    faces = model.predict(several).faces
    by_area = photo_probabilities(
        np.array([[f.probabilities[n] for n in model.class_names] for f in faces]),
        [f.box[2] * f.box[3] for f in faces],
        "area",
    )
    whole = model.predict(several, faces="none").faces[0].probabilities
    np.testing.assert_allclose(
        [alone.probabilities[n] for n in model.class_names], by_area, atol=1e-5
    )
    expected = [0.8 * p + 0.2 * whole[n] for p, n in zip(by_area, model.class_names)]
    np.testing.assert_allclose(
        [blended.probabilities[n] for n in model.class_names], expected, atol=1e-5
    )
    no_face = next(p for p in photos if p.endswith(Path(NO_FACE).name))
    read_whole = model.predict_photo(no_face, fallback="whole-image", faces="detect")
    if read_whole.source == "whole-image":
        assert (
            read_whole.probabilities
            == model.predict_photo(
                no_face, fallback="whole-image", faces="detect", context=0.0
            ).probabilities
        )
    with pytest.raises(ConfigError, match="context"):
        model.predict_photo(several, context=1.0)
