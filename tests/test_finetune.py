"""Training on a folder of whole photos (data.faces: detect) and from a trained model
(train.init_from, train.freeze_conv_epochs)."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from emotion_tf.config import load_config
from emotion_tf.errors import ConfigError, DataError
from emotion_tf.faces.detector import FaceBox
from emotion_tf.train.trainer import load_training_data, train
from tests.conftest import REPO_ROOT, tiny_overrides
from tests.faces_helpers import clutter, detectable_faces, paste

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory: pytest.TempPathFactory, fer_dir: Path) -> Path:
    """train: 3 photos per class with one FER face each, a photo without a face and a file
    that is not an image; validation: 2 photos per class."""
    faces = detectable_faces(fer_dir, 10, detector="haar")
    root = tmp_path_factory.mktemp("photos")
    counts = {"train": 0, "validation": 0}
    for i, face in enumerate(faces):
        split = "train" if i < 6 else "validation"
        label = face.parent.name
        folder = root / split / label
        folder.mkdir(parents=True, exist_ok=True)
        # As detectable_faces found them: 150 px on a plain background.
        canvas = Image.new("RGB", (300, 300), (128, 150, 170))
        paste(canvas, [face], [FaceBox(75, 75, 150, 150)]).save(folder / f"photo{i}.png")
        counts[split] += 1
    clutter(99, (320, 240)).save(root / "train" / "happy" / "empty.jpg", quality=93)
    (root / "train" / "sad" / "broken.jpg").write_bytes(b"not a jpeg at all")
    return root


def photo_overrides(run_dir: Path, data: Path, cache: Path, **extra: object) -> list[str]:
    return tiny_overrides(
        run_dir,
        data,
        **{
            "data.faces": "detect",
            "data.detector": "haar",
            "data.face_cache": str(cache),
            "data.batch_size": 4,
            "model.channels": 1,
            **extra,
        },
    )


@pytest.mark.shared_data
def test_photos_are_cropped_once_counted_and_cached(photo_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    result = train(load_config(None, photo_overrides(tmp_path / "a", photo_dir, cache)))
    info = json.loads((result.run_dir / "run_info.json").read_text())
    faces = info["faces"]
    assert faces["train"]["photos"] == 7  # the broken file is left out by the scan
    assert faces["train"]["with_face"] == 6 and faces["train"]["no_face_whole"] == 1
    assert faces["train"]["no_face_files"][0].endswith("empty.jpg")
    assert faces["validation"] == {**faces["validation"], "photos": 4, "with_face": 4}
    assert [Path(s["path"]).name for s in info["skipped_files"]] == ["broken.jpg"]
    assert info["counts"]["train"] == {"happy": 4, "sad": 3}
    crops = sorted(cache.glob("haar-*/*.png"))
    assert len(crops) == 10
    with Image.open(crops[0]) as crop:
        assert crop.size == (32, 32) and crop.mode == "L"  # model input size and channels

    # Scanned again (no training needed) with the same cache: nothing is detected anew.
    skip = load_config(
        None, photo_overrides(tmp_path / "b", photo_dir, cache, **{"data.no_face": "skip"})
    )
    data = load_training_data(skip)
    assert data.faces["train"]["cached"] == 7 and data.faces["validation"]["cached"] == 4
    assert data.faces["train"]["no_face_skipped"] == 1
    assert data.splits["train"].counts() == {"happy": 3, "sad": 3}
    assert len(sorted(cache.glob("haar-*/*.png"))) == 10


@pytest.mark.shared_data
def test_no_face_second_look_trains_on_the_fainter_faces_and_counts_them(
    photo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """data.no_face: second-look: the photo without a face is trained on the crop of the face a
    second look finds (stubbed here: a fixed box), counted apart, and cached as such."""
    from emotion_tf.faces import second_look

    looked: list[tuple[int, ...]] = []

    def faint(image: np.ndarray, detector: object) -> list[FaceBox]:
        looked.append(image.shape)
        return [FaceBox(100, 60, 90, 90, 0.2)]

    monkeypatch.setattr(second_look, "second_look", faint)
    cache = tmp_path / "cache"
    config = load_config(
        None, photo_overrides(tmp_path / "a", photo_dir, cache, **{"data.no_face": "second-look"})
    )
    data = load_training_data(config)
    train_faces = data.faces["train"]
    assert len(looked) == 1  # only the photo where Haar found nothing
    assert train_faces["with_face"] == 7 and train_faces["second_look"] == 1
    assert train_faces["no_face_whole"] == 0 and train_faces["no_face_files"] == []
    assert data.splits["train"].counts() == {"happy": 4, "sad": 3}
    assert all(path.endswith(".png") for path in data.splits["train"].paths)
    # A rescan reads the cache, second-look marks included; the whole-photo setting has its own.
    again = load_training_data(config)
    assert again.faces["train"]["cached"] == 7 and again.faces["train"]["second_look"] == 1
    assert len(looked) == 1
    whole = load_training_data(load_config(None, photo_overrides(tmp_path / "b", photo_dir, cache)))
    assert whole.faces["train"]["second_look"] == 0 and whole.faces["train"]["no_face_whole"] == 1


@pytest.mark.shared_data
def test_faces_per_photo_trains_on_the_largest_faces_with_the_photo_label(
    fer_dir: Path, tmp_path: Path
) -> None:
    faces = detectable_faces(fer_dir, 6, detector="haar")
    root = tmp_path / "groups"
    boxes = [FaceBox(30, 40, 110, 110), FaceBox(230, 200, 170, 170), FaceBox(470, 60, 140, 140)]
    for split in ("train", "validation"):
        for label, members in (("happy", faces[:3]), ("sad", faces[3:4])):
            (root / split / label).mkdir(parents=True)
            paste(clutter(1), members, boxes[: len(members)]).save(root / split / label / "p.png")
    cache = tmp_path / "cache"

    def scanned(count: int):
        extra = {"data.faces_per_photo": count}
        config = load_config(None, photo_overrides(tmp_path, root, cache, **extra))
        return load_training_data(config)

    largest = scanned(1)
    assert largest.splits["train"].counts() == {"happy": 1, "sad": 1}
    assert largest.faces["train"]["several_faces"] == 1
    two, every = scanned(2), scanned(0)
    assert two.splits["train"].counts() == {"happy": 2, "sad": 1}
    assert every.splits["train"].counts() == {"happy": 3, "sad": 1}
    assert every.faces["train"]["faces_trained"] == 4 and every.faces["train"]["cached"] == 2
    # Largest first: the 170 px face, then the 140 px one.
    assert every.splits["train"].paths[:2] == two.splits["train"].paths[:2]
    with Image.open(every.splits["train"].paths[0]) as crop:
        first = np.asarray(crop, dtype=np.float32)
    with Image.open(every.splits["train"].paths[2]) as crop:
        smallest = np.asarray(crop, dtype=np.float32)
    assert not np.array_equal(first, smallest)
    with pytest.raises(ConfigError, match="data.faces_per_photo"):
        scanned(-1)

    # whole_photos_too: each training photo also enters whole, beside its largest face;
    # validation still lists one crop per photo.
    config = load_config(
        None, photo_overrides(tmp_path, root, cache, **{"data.whole_photos_too": True})
    )
    both = load_training_data(config)
    train_paths = both.splits["train"].paths
    assert both.splits["train"].counts() == {"happy": 2, "sad": 2}
    assert sorted(Path(p).name for p in train_paths if not p.startswith(str(cache))) == [
        "p.png",
        "p.png",
    ]
    assert both.faces["train"]["whole_with_face"] == 2
    assert both.splits["validation"].counts() == {"happy": 1, "sad": 1}
    assert both.faces["validation"]["whole_with_face"] == 0


@pytest.fixture(scope="module")
def base_run(tiny_run):
    """The session's tiny run (read only here): init_from reads its best.keras."""
    return tiny_run


def conv_and_fc(model: keras.Model) -> tuple[list[np.ndarray], list[np.ndarray]]:
    conv = [w for n in ("conv1", "conv5") for w in model.get_layer(n).get_weights()]
    return conv, model.get_layer("fc8").get_weights()


def test_init_from_loads_the_run_and_freezes_conv_layers(
    base_run, tiny_data_dir: Path, tmp_path: Path
) -> None:
    start = keras.models.load_model(base_run.run_dir / "best.keras")
    conv0, fc0 = conv_and_fc(start)
    frozen = train(
        load_config(
            None,
            tiny_overrides(
                tmp_path / "frozen",
                tiny_data_dir,
                **{
                    "train.init_from": str(base_run.run_dir),
                    "train.freeze_conv_epochs": 1,
                    "train.keep": "last",
                },
            ),
        ),
        export=False,
    )
    conv1, fc1 = conv_and_fc(keras.models.load_model(frozen.run_dir / "last.keras"))
    for before, after in zip(conv0, conv1):
        np.testing.assert_array_equal(before, after)
    assert any(not np.allclose(a, b) for a, b in zip(fc0, fc1))

    moved = train(
        load_config(
            None,
            tiny_overrides(
                tmp_path / "moved",
                tiny_data_dir,
                **{"train.init_from": str(base_run.run_dir / "best.keras"), "train.keep": "last"},
            ),
        ),
        export=False,
    )
    conv2, _ = conv_and_fc(keras.models.load_model(moved.run_dir / "last.keras"))
    assert any(not np.allclose(a, b) for a, b in zip(conv0, conv2))
    # Not a copy of random weights: the first step starts from the run's weights.
    assert np.mean([np.abs(a - b).mean() for a, b in zip(conv0, conv2)]) < 0.05


def test_init_from_bad_sources_are_one_line_errors(base_run, tmp_path: Path) -> None:
    from emotion_tf.model.alexnet import build_alexnet
    from emotion_tf.train.init_from import initialise_from

    fake = tmp_path / "model.keras"
    fake.write_text("not a model")
    not_packaged = tmp_path / "weights.npz"
    not_packaged.write_bytes(b"PK\x03\x04 truncated")
    config = load_config(None, tiny_overrides(tmp_path / "r", tmp_path))
    model = build_alexnet(config.model, 2)
    cases = {
        str(fake): "is not a Keras model file",
        str(tmp_path / "missing"): "no such file or run directory",
        str(tmp_path): "no best.keras or last.keras",
        str(base_run.run_dir / "metrics.json"): "expected a run directory, a .keras file",
        str(not_packaged): "not a packaged emotion-tf model",
    }
    for source, message in cases.items():
        with pytest.raises(ConfigError, match=message) as err:
            initialise_from(model, source, ["happy", "sad"])
        assert "\n" not in str(err.value) and str(Path(source).name) in str(err.value)
    wider = load_config(None, tiny_overrides(tmp_path / "w", tmp_path, **{"model.width": 0.125}))
    with pytest.raises(ConfigError, match="model settings it was trained with") as err:
        initialise_from(build_alexnet(wider.model, 2), str(base_run.run_dir), ["happy", "sad"])
    assert "best.keras" in str(err.value)
    with pytest.raises(ConfigError, match="trained on classes"):
        initialise_from(model, str(base_run.run_dir), ["cats", "dogs"])


def test_a_gray_model_starts_a_colour_model_that_reads_colour_as_its_gray_conversion(
    tmp_path: Path,
) -> None:
    """model.channels: 3 from a gray model: conv1 is spread over R, G, B by the luma weights,
    so before any training the colour model's answer on a colour image is the gray model's
    on the image's gray conversion (and fine-tuning may then learn from colour)."""
    from emotion_tf.model.alexnet import build_alexnet
    from emotion_tf.train.init_from import LUMA, initialise_from

    def model_with(channels: int) -> keras.Model:
        overrides = tiny_overrides(tmp_path / "r", tmp_path, **{"model.channels": channels})
        return build_alexnet(load_config(None, overrides).model, 2)

    keras.utils.set_random_seed(0)
    gray_model, colour_model = model_with(1), model_with(3)
    gray_model.save(tmp_path / "gray.keras")
    initialise_from(colour_model, str(tmp_path / "gray.keras"), ["happy", "sad"])
    size = gray_model.input_shape[1]
    images = np.random.default_rng(0).uniform(0, 255, (4, size, size, 3)).astype("float32")
    gray = (images * np.asarray(LUMA, "float32")).sum(-1, keepdims=True)
    ours = colour_model.predict(images, verbose=0)
    theirs = gray_model.predict(gray, verbose=0)
    np.testing.assert_allclose(ours, theirs, atol=1e-3)
    assert np.ptp(theirs[:, 0]) > 1e-4  # the images get different answers: a real check
    # Colour to gray is not a widening: it stays an error naming the shapes.
    colour_model.save(tmp_path / "colour.keras")
    with pytest.raises(ConfigError, match="takes inputs of shape"):
        initialise_from(model_with(1), str(tmp_path / "colour.keras"), ["happy", "sad"])


def test_init_from_packaged_copies_the_packaged_weights(tmp_path: Path) -> None:
    """`train.init_from: packaged` (or the .npz path) starts from the model in the package."""
    from emotion_tf.model.alexnet import build_alexnet
    from emotion_tf.packaged import PACKAGED_MODEL_FILE
    from emotion_tf.packaged.archive import read_packaged
    from emotion_tf.train.init_from import class_names_of, initialise_from

    config = load_config(REPO_ROOT / "configs" / "web-photos.yaml")
    assert config.train.init_from == "packaged"
    packaged = read_packaged(PACKAGED_MODEL_FILE)
    for source in ("packaged", str(PACKAGED_MODEL_FILE)):
        assert class_names_of(source) == packaged.class_names
        model = build_alexnet(config.model, 2)
        initialise_from(model, source, ["happy", "sad"])
        for ours, theirs in zip(model.weights, packaged.model.weights):
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    with pytest.raises(ConfigError, match="trained on classes"):
        initialise_from(build_alexnet(config.model, 2), "packaged", ["cats", "dogs"])


def test_freeze_epochs_are_validated(tiny_data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="train.freeze_conv_epochs"):
        load_config(
            None, tiny_overrides(tmp_path, tiny_data_dir, **{"train.freeze_conv_epochs": 3})
        )
    with pytest.raises(ConfigError, match="data.faces"):
        load_config(None, tiny_overrides(tmp_path, tiny_data_dir, **{"data.faces": "auto"}))


def test_web_photos_benchmark_smoke(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """benchmarks/web_photos.py end to end at tiny sizes (measures nothing)."""
    from benchmarks import web_photos as module

    out = tmp_path / "web.json"
    reader = tmp_path / "reader.csv"  # names the smoke photos; one of them unclear
    unclear = ("validation", "sad", 0)
    rows = [
        f"{split}/{label}/{label}{i}.jpg,{'unclear' if (split, label, i) == unclear else label}"
        for split, count in (("train", 4), ("validation", 3))
        for label in ("happy", "sad")
        for i in range(count)
    ]
    reader.write_text("photo,reader\n" + "\n".join(rows) + "\n")
    argv = ["--smoke", "--out", str(out), "--work-dir", str(tmp_path / "w")]
    assert module.main([*argv, "--reader-labels", str(reader)]) == 0
    report = json.loads(out.read_text())
    names = {f["name"] for f in report["figures"]}
    assert "validation.fer.haar.area.accuracy" in names
    assert "validation.finetuned.accuracy" in names
    assert "validation.finetuned.readable_accuracy" in names
    finetuned = report["details"]["validation.finetuned"]
    assert (finetuned["count"], finetuned["readable"], finetuned["unclear"]) == (6, 5, 1)
    assert sum(count for _, count in finetuned["routes"].values()) == 6  # every photo, by route
    assert set(finetuned["recall"]) == {"happy", "sad"}
    assert "validation.finetuned.cpu_seconds_per_photo" in names
    assert "SUMMARY validation.finetuned.accuracy" in capsys.readouterr().out
    assert module.wilson(85, 100) == pytest.approx((76.7, 90.7), abs=0.1)


@pytest.mark.shared_data
def test_rehearsal_mixes_a_seeded_sample_of_another_data_set_into_train(
    photo_dir: Path, fer_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    extra = {"data.rehearsal_dir": str(fer_dir), "data.rehearsal_per_class": 3}
    config = load_config(None, photo_overrides(tmp_path / "r", photo_dir, cache, **extra))
    data = load_training_data(config)
    train = data.splits["train"]
    fer_train = str(fer_dir / "train")
    added = [(p, label) for p, label in zip(train.paths, train.labels) if p.startswith(fer_train)]
    assert len(added) == 6 and data.rehearsal["counts"] == {"happy": 3, "sad": 3}
    assert all(Path(p).parent.name == ("happy", "sad")[label] for p, label in added)
    plain = load_training_data(load_config(None, photo_overrides(tmp_path / "p", photo_dir, cache)))
    assert train.paths[: len(plain.splits["train"].paths)] == plain.splits["train"].paths
    assert len(train.paths) == len(plain.splits["train"].paths) + 6
    assert data.splits["validation"].paths == plain.splits["validation"].paths  # untouched
    assert load_training_data(config).splits["train"].paths == train.paths  # seeded
    other = load_config(None, photo_overrides(tmp_path / "s", photo_dir, cache, **extra))
    other.train.seed += 1
    assert load_training_data(other).splits["train"].paths != train.paths
    missing = photo_overrides(tmp_path / "m", photo_dir, cache, **{"data.rehearsal_dir": "/nope"})
    with pytest.raises(DataError, match="/nope"):
        load_training_data(load_config(None, missing))
    with pytest.raises(ConfigError, match="data.rehearsal_per_class"):
        load_config(
            None,
            photo_overrides(tmp_path, photo_dir, cache, **{**extra, "data.rehearsal_per_class": 0}),
        )
