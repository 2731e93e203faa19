"""The Python examples of docs/api.md and README.md run as written against the packaged model,
and the packaged model answers a face photo right after install (no model named, no download)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from emotion_tf.faces.detector import FaceBox
from tests.conftest import REPO_ROOT
from tests.faces_helpers import clutter, detectable_faces, paste

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def example_dir(tmp_path_factory: pytest.TempPathFactory, fer_dir: Path) -> Path:
    """photo.jpg (a FER face in a cluttered colour photo), face.png and faces/ (FER crops)."""
    folder = tmp_path_factory.mktemp("examples")
    (face,) = detectable_faces(fer_dir, 1)
    paste(clutter(3), [face], [FaceBox(200, 120, 160, 160)]).save(folder / "photo.jpg")
    shutil.copy(face, folder / "face.png")
    (folder / "faces").mkdir()
    for path in sorted((fer_dir / "validation" / "sad").glob("*.jpg"))[:3]:
        shutil.copy(path, folder / "faces" / path.name)
    return folder


@pytest.mark.parametrize("document", ["docs/api.md", "README.md"])
def test_python_examples_run(document: str, example_dir: Path) -> None:
    blocks = python_blocks(REPO_ROOT / document)
    assert blocks, f"{document} has no python examples"
    namespace: dict[str, object] = {}
    output = io.StringIO()
    previous = Path.cwd()
    os.chdir(example_dir)
    try:
        with contextlib.redirect_stdout(output):
            for block in blocks:
                exec(compile(block, document, "exec"), namespace)
    finally:
        os.chdir(previous)
    printed = output.getvalue()
    assert re.search(r"^(happy|sad) 0\.\d+", printed, flags=re.M), printed
    if document == "docs/api.md":
        assert "missing.jpg: no such file or folder" in printed
        assert "['sad']" in printed or "['happy']" in printed


def test_packaged_model_is_small_and_answers_with_no_model_named(example_dir: Path) -> None:
    import emotion_tf
    from emotion_tf.config import load_config
    from emotion_tf.packaged import PACKAGED_MODEL_FILE
    from emotion_tf.packaged.archive import read_metadata
    from emotion_tf.packaged.build import recipe_differences

    assert PACKAGED_MODEL_FILE.stat().st_size <= 10_000_000
    meta = read_metadata(PACKAGED_MODEL_FILE)  # the committed config rebuilds the committed model
    committed = load_config(REPO_ROOT / "configs/packaged-web-both.yaml")
    assert recipe_differences(meta["config"], committed) == []
    model = emotion_tf.load()
    assert model.class_names == ["happy", "sad"]
    answer = model.predict_photo(example_dir / "photo.jpg")
    assert answer.ok and answer.faces == 1 and answer.label in ("happy", "sad")
    assert FaceBox(*answer.box).iou(FaceBox(200, 120, 160, 160)) > 0.5  # the pasted face
    with Image.open(example_dir / "face.png") as crop:  # a 48 x 48 FER2013 crop
        direct = model.predict(crop)
        whole = model.predict(crop, faces="none")
    # Read whole as a face crop where no face is found in it, else cut from the face found.
    assert direct.faces[0].source in ("crop", "detector")
    assert whole.faces[0].source == "crop" and whole.faces[0].box == [0, 0, 48, 48]


def test_predict_command_uses_the_packaged_model_when_none_is_named(example_dir: Path) -> None:
    from click.testing import CliRunner

    from emotion_tf.cli import main

    result = CliRunner().invoke(main, ["predict", str(example_dir / "photo.jpg")])
    assert result.exit_code == 0, result.output
    assert re.search(
        r"photo\.jpg\s+0\s+\[\d+, \d+, \d+, \d+\].*(happy|sad)\s+0\.\d{3}", result.stdout
    )
