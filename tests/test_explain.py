"""Grad-CAM: heat-map shape and range, dependence on the class asked, models it accepts, and
`emotion-tf explain` on whole photos through the face detector."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from emotion_tf.cli import main
from emotion_tf.errors import ModelDirError
from emotion_tf.explain.gradcam import GradCam, heat_overlay
from emotion_tf.explain.model import load_keras_model
from emotion_tf.explain.paths import explain_paths
from emotion_tf.faces.detector import FaceBox
from emotion_tf.faces.photo import decode_photo
from emotion_tf.pipeline.options import PhotoOptions
from tests.faces_helpers import clutter, detectable_faces, fer_run, paste

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]
BOXES = [FaceBox(40, 60, 150, 150), FaceBox(330, 180, 200, 200)]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, fer_dir: Path):
    return fer_run(tmp_path_factory, fer_dir)


@pytest.fixture(scope="module")
def faces(fer_dir: Path) -> list[Path]:
    return detectable_faces(fer_dir, 6)


@pytest.fixture(scope="module")
def crops(faces: list[Path]) -> np.ndarray:
    return np.stack([decode_photo(p.read_bytes(), 1) for p in faces])


def test_heat_maps_have_the_input_shape_and_range(run, crops) -> None:
    cam = GradCam(load_keras_model(run.run_dir).model)
    heat, probabilities, explained = cam(crops)
    assert heat.shape == (len(crops), 48, 48) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    peaks = heat.reshape(len(crops), -1).max(axis=1)
    assert np.all((np.abs(peaks - 1.0) < 1e-5) | (peaks == 0.0))  # scaled per image
    assert (peaks == 1.0).sum() >= len(crops) // 2
    assert probabilities.shape == (len(crops), 2)
    np.testing.assert_array_equal(explained, probabilities.argmax(axis=1))
    assert np.std(heat.reshape(len(crops), -1), axis=1).max() > 0.05  # not flat


def test_heat_maps_change_with_the_class_asked(run, crops) -> None:
    cam = GradCam(load_keras_model(run.run_dir).model)
    happy, _, targets_happy = cam(crops, 0)
    sad, _, targets_sad = cam(crops, 1)
    assert set(targets_happy) == {0} and set(targets_sad) == {1}
    differ = [np.abs(h - s).mean() > 0.02 for h, s in zip(happy, sad)]
    assert sum(differ) >= len(crops) - 1
    predicted, _, explained = cam(crops)
    for i, target in enumerate(explained):
        np.testing.assert_allclose(predicted[i], (happy, sad)[target][i], atol=1e-5)


def test_model_paths_grad_cam_accepts(run, tmp_path: Path) -> None:
    for path in (run.run_dir, run.run_dir / "best.keras", run.export_path, run.export_path.parent):
        loaded = load_keras_model(path)
        assert loaded.class_names == ["happy", "sad"]
        assert loaded.path == run.run_dir / "best.keras"
    alone = tmp_path / "alone" / "1"
    shutil.copytree(run.export_path, alone)
    with pytest.raises(ModelDirError, match="needs gradients"):
        load_keras_model(alone)
    other = tmp_path / "other"
    shutil.copytree(run.run_dir, other, ignore=shutil.ignore_patterns("logs", "backup"))
    config = other / "config.yaml"
    config.write_text(config.read_text().replace("epochs: 4", "epochs: 5"))
    with pytest.raises(ModelDirError, match="config hash"):
        load_keras_model(other / "export" / "1")
    with pytest.raises(ModelDirError, match="not found"):
        load_keras_model(tmp_path / "missing")


def test_explain_whole_photos_through_the_detector(run, faces, tmp_path: Path) -> None:
    photo = tmp_path / "two.jpg"
    paste(clutter(50), faces[:2], BOXES).save(photo, quality=95)
    empty = tmp_path / "empty.png"
    clutter(51).save(empty)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG broken")
    crop = tmp_path / "crop.png"  # small, no face found in it: read whole as a face crop
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48), np.uint8)).save(crop)
    out = tmp_path / "out"
    results = explain_paths(
        load_keras_model(run.run_dir),
        [str(photo), str(empty), str(broken), str(crop)],
        out,
        classes=["sad"],
        options=PhotoOptions(fallback="none"),
    )
    by_path: dict[str, list] = {}
    for item in results:
        by_path.setdefault(Path(item.path).name, []).append(item)
    assert by_path["empty.png"][0].no_face and by_path["broken.png"][0].error
    panels = by_path["two.jpg"]
    assert {(p.face, p.explained_class) for p in panels} >= {(0, "sad"), (1, "sad")}
    assert {p.face for p in panels if p.explained_class == p.label} == {0, 1}
    for item in panels:
        assert any(FaceBox(*item.box).iou(b) > 0.5 for b in BOXES)
        with Image.open(item.file) as panel:
            assert panel.size[0] == 2 * 256 and panel.size[1] > 256
    for name in ("two_gradcam.png", "two_gradcam_sad.png"):
        with Image.open(out / name) as whole:
            assert whole.size == (640, 480)
    crop_items = by_path[crop.name]  # a face crop: used whole, no whole-photo overlay
    assert crop_items and all(item.box == [0, 0, 48, 48] for item in crop_items)
    assert not (out / f"{crop.stem}_gradcam.png").exists()
    listed = json.loads((out / "explanations.json").read_text())
    assert len(listed) == len(results)


def test_overlay_marks_the_hot_region() -> None:
    image = np.full((40, 40), 128, np.uint8)
    heat = np.zeros((40, 40), np.float32)
    heat[:20] = 1.0
    overlay = heat_overlay(image, heat).astype(int)
    assert overlay.shape == (40, 40, 3)
    assert overlay[5, 5, 0] > overlay[5, 5, 2]  # hot: red in the 'jet' colours
    assert overlay[35, 35, 2] > overlay[35, 35, 0]  # cold: blue


def test_explain_cli(run, faces, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main, ["explain", "-m", str(run.run_dir), str(faces[0]), "--output", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    [panel] = (tmp_path / "o").glob(f"{faces[0].stem}_face0_*.png")
    assert str(panel) in result.stdout
    bad = runner.invoke(
        main,
        [
            "explain",
            "-m",
            str(run.run_dir),
            str(faces[0]),
            "--output",
            str(tmp_path / "o"),
            "--class",
            "angry",
        ],
    )
    assert bad.exit_code == 2 and "--class must be one of ['happy', 'sad']" in bad.output


def test_grad_cam_equals_the_closed_form_on_a_linear_model() -> None:
    """With global average pooling and a linear fc8, Grad-CAM for class c is
    relu(sum_k W[k, c] A_k), scaled to a peak of 1 (Zhou et al.'s CAM)."""
    import keras

    inputs = keras.Input((8, 8, 3), name="image")
    features = keras.layers.Activation("linear", name="conv5_relu")(inputs)
    pooled = keras.layers.AveragePooling2D(8, name="pool5")(features)
    logits = keras.layers.Dense(2, name="fc8")(keras.layers.Flatten()(pooled))
    outputs = keras.layers.Activation("softmax", name="probabilities")(logits)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(3, 2)).astype(np.float32)
    model.get_layer("fc8").set_weights([weights, np.zeros(2, np.float32)])
    images = rng.uniform(0, 255, size=(2, 8, 8, 3)).astype(np.float32)
    for target in (0, 1):
        heat, _, _ = GradCam(model)(images, target)
        expected = np.maximum(images @ weights[:, target], 0.0)
        expected /= expected.reshape(2, -1).max(axis=1)[:, None, None]
        np.testing.assert_allclose(heat, expected, atol=1e-5)
