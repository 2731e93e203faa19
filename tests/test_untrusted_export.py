"""Exports are programs: one that reads or writes files is refused unless trusted, and one that
breaks the contract (signatures, outputs, metadata, class count) is refused in one line."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import tensorflow as tf
from click.testing import CliRunner
from PIL import Image

from emotion_tf.cli import main
from emotion_tf.errors import ModelDirError
from emotion_tf.export import METADATA_FILE, LoadedExport, export_model
from emotion_tf.export_checks import disallowed_ops, read_meta_graph
from emotion_tf.serve.model import ServedModel

METADATA = {"class_names": ["happy", "sad"], "input_size": 32, "channels": 3}


def hand_made_export(
    version_dir: Path,
    body: Callable[[tf.Tensor], dict[str, tf.Tensor]],
    metadata: dict | None = None,
) -> Path:
    """A SavedModel with our two signatures whose outputs come from `body(batch_size)`."""
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        return body(tf.shape(image_bytes)[0])

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serve_images(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return body(tf.shape(images)[0])

    tf.saved_model.save(
        module,
        str(version_dir),
        signatures={"serving_default": serve_bytes, "serving_images": serve_images},
    )
    (version_dir / "assets").mkdir(exist_ok=True)
    meta = METADATA if metadata is None else metadata
    (version_dir / "assets" / METADATA_FILE).write_text(json.dumps(meta))
    return version_dir


def outputs(count: tf.Tensor, width: int | tf.Tensor = 2, drop: str = "") -> dict[str, tf.Tensor]:
    probabilities = tf.fill(tf.stack([count, width]), 0.5)
    index = tf.argmax(probabilities, axis=1)
    result = {
        "probabilities": probabilities,
        "label": tf.gather(tf.constant(["happy", "sad"]), tf.minimum(index, 1)),
        "confidence": tf.reduce_max(probabilities, axis=1),
        "class_index": index,
    }
    result.pop(drop, None)
    return result


@pytest.fixture(scope="module")
def file_reading_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """An export whose signatures copy a secret file to another file on every call."""
    root = tmp_path_factory.mktemp("hostile")
    secret, stolen = root / "secret.txt", root / "stolen.txt"
    secret.write_text("hostname-like secret\n")

    def body(count: tf.Tensor) -> dict[str, tf.Tensor]:
        tf.io.write_file(str(stolen), tf.io.read_file(str(secret)))
        return outputs(count)

    return hand_made_export(root / "export" / "1", body).parent, secret, stolen


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(out, format="PNG")
    return out.getvalue()


def test_our_own_exports_pass_the_allow_list(tmp_path: Path) -> None:
    from emotion_tf.config import ModelConfig
    from emotion_tf.model.alexnet import build_alexnet

    for channels, flip in ((3, False), (1, True)):
        model = build_alexnet(ModelConfig(input_size=32, width=0.0625, channels=channels), 2)
        path = export_model(model, tmp_path / str(channels), ["happy", "sad"], test_time_flip=flip)
        assert disallowed_ops(read_meta_graph(path)) == []


def test_file_reading_export_is_refused_naming_the_op(file_reading_export, tmp_path: Path):
    base, _, stolen = file_reading_export
    with pytest.raises(ModelDirError, match=r"uses op (ReadFile|WriteFile) .*--trust-model"):
        LoadedExport(base)
    with pytest.raises(ModelDirError, match="ReadFile"):
        ServedModel(base)
    image = tmp_path / "face.png"
    image.write_bytes(png())
    for command in (
        ["predict", str(image), "--model", str(base)],
        ["evaluate", str(tmp_path), "--model", str(base)],
    ):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "ReadFile" in lines[0] and "WriteFile" in lines[0], lines
    assert not stolen.exists()


def test_trusted_export_runs_as_asked(file_reading_export, tmp_path: Path) -> None:
    """--trust-model really runs the graph: the check above is what kept the file unwritten."""
    base, secret, stolen = file_reading_export
    image = tmp_path / "face.png"
    image.write_bytes(png())
    result = CliRunner().invoke(
        main, ["predict", str(image), "--model", str(base), "--faces", "none", "--trust-model"]
    )
    assert result.exit_code == 0, result.output
    assert stolen.read_text() == secret.read_text()
    stolen.unlink()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no label output", "lacks output(s) label"),
        ("no input_size", "metadata has no 'input_size'"),
        ("5 columns for 2 classes", "'probabilities' has 5 columns but the metadata lists 2"),
        ("class count known only when run", "probabilities of shape [1, 5] for 1 image(s) and 2"),
    ],
)
def test_contract_mismatch_is_one_line(case: str, message: str, tmp_path: Path) -> None:
    metadata = dict(METADATA)
    body: Callable[[tf.Tensor], dict[str, tf.Tensor]] = outputs
    if case == "no label output":
        body = lambda count: outputs(count, drop="label")  # noqa: E731
    elif case == "no input_size":
        del metadata["input_size"]
    elif case == "5 columns for 2 classes":
        body = lambda count: outputs(count, width=5)  # noqa: E731
    else:  # the width is a tensor, so the signature says [?, ?]

        def body(count: tf.Tensor) -> dict[str, tf.Tensor]:
            return outputs(count, width=count * 0 + 5)

    base = hand_made_export(tmp_path / "export" / "1", body, metadata).parent
    image = tmp_path / "face.png"
    image.write_bytes(png())
    result = CliRunner().invoke(
        main, ["predict", str(image), "--model", str(base), "--faces", "none"]
    )
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert "Traceback" not in result.output
