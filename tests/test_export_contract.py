"""The export is a contract with TF Serving: signatures, versions, metadata, warm-up, size."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from emotion_tf import __version__
from emotion_tf.errors import ModelDirError
from emotion_tf.export import (
    BYTES_SIGNATURE,
    IMAGES_SIGNATURE,
    METADATA_FILE,
    WARMUP_DIR,
    WARMUP_FILE,
    LoadedExport,
    _claim_version,
    export_model,
    read_metadata,
    weights_nbytes,
)
from emotion_tf.preprocess import decode_image, resize_uint8

OUTPUTS = {"probabilities", "label", "confidence", "class_index"}


@pytest.fixture(scope="module")
def trained(tiny_run):
    """A seconds-long training run with its automatic export (version 1): the session's."""
    return tiny_run


@pytest.fixture(scope="module")
def sample_files(tiny_data_dir: Path) -> list[Path]:
    """Validation images of both classes in several formats and sizes."""
    files = sorted((tiny_data_dir / "validation").glob("*/*"))
    picked = [f for f in files if "happy" in f.parent.name][:3]
    picked += [f for f in files if "sad" in f.parent.name][:3]
    assert {f.suffix for f in picked} and len(picked) == 6
    return picked


def saved_model_cli() -> str:
    beside = Path(sys.executable).with_name("saved_model_cli")
    found = str(beside) if beside.exists() else shutil.which("saved_model_cli")
    assert found, "saved_model_cli (installed with tensorflow) not found"
    return found


def _quiet_env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def test_loads_with_tf_saved_model_load(trained) -> None:
    loaded = tf.saved_model.load(str(trained.export_path))
    assert {BYTES_SIGNATURE, IMAGES_SIGNATURE} <= set(loaded.signatures)
    _, inputs = loaded.signatures[BYTES_SIGNATURE].structured_input_signature
    assert inputs["image_bytes"].dtype == tf.string
    _, inputs = loaded.signatures[IMAGES_SIGNATURE].structured_input_signature
    assert inputs["images"].dtype == tf.uint8
    assert set(loaded.signatures[BYTES_SIGNATURE].structured_outputs) == OUTPUTS


def test_saved_model_cli_show_lists_signatures(trained) -> None:
    result = subprocess.run(
        [saved_model_cli(), "show", "--dir", str(trained.export_path), "--all"],
        capture_output=True,
        text=True,
        env=_quiet_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for expected in (
        "signature_def['serving_default']",
        "signature_def['serving_images']",
        "inputs['image_bytes']",
        "inputs['images']",
        "dtype: DT_STRING",
        "dtype: DT_UINT8",
        *[f"outputs['{name}']" for name in OUTPUTS],
    ):
        assert expected in out, f"{expected!r} missing from saved_model_cli show output"


@pytest.mark.slow
def test_saved_model_cli_run_matches_predict(trained, sample_files, tmp_path: Path) -> None:
    """The session-based loader TF Serving uses gives the same answers as `predict`."""
    from emotion_tf.predict import predict_paths

    blobs = np.array([f.read_bytes() for f in sample_files], dtype=object)
    np.save(tmp_path / "images.npy", blobs, allow_pickle=True)
    result = subprocess.run(
        [
            saved_model_cli(),
            "run",
            "--dir",
            str(trained.export_path),
            "--tag_set",
            "serve",
            "--signature_def",
            BYTES_SIGNATURE,
            "--inputs",
            f"image_bytes={tmp_path / 'images.npy'}",
            "--outdir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=_quiet_env(),
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    cli_probs = np.load(tmp_path / "out" / "probabilities.npy")
    cli_labels = [v.decode() for v in np.load(tmp_path / "out" / "label.npy", allow_pickle=True)]

    model = LoadedExport(trained.export_path)
    rows = list(predict_paths(model, [str(f) for f in sample_files]))
    assert [r.error for r in rows] == [None] * len(sample_files)
    predict_probs = np.array([[r.probabilities[n] for n in model.class_names] for r in rows])
    np.testing.assert_allclose(cli_probs, predict_probs, rtol=1e-5, atol=1e-6)
    for row, label, probs in zip(rows, cli_labels, cli_probs):
        if abs(probs[0] - probs[1]) > 1e-4:  # a near-tie may flip under float noise
            assert row.label == label


def test_bytes_and_uint8_signatures_agree_with_keras(trained, sample_files) -> None:
    """Same images through both signatures and through the in-memory Keras model."""
    import keras

    model = LoadedExport(trained.export_path)
    keras_model = keras.models.load_model(trained.run_dir / "best.keras", safe_mode=True)
    blobs = [f.read_bytes() for f in sample_files]
    from_bytes = model.predict_bytes(blobs)["probabilities"]
    for i, blob in enumerate(blobs):
        decoded = decode_image(tf.constant(blob), model.channels)
        from_images = model.predict_images(decoded[None])["probabilities"][0]
        np.testing.assert_allclose(from_images, from_bytes[i], rtol=0, atol=1e-6)
        resized = resize_uint8(decoded, model.input_size)
        from_keras = keras_model(tf.cast(resized[None], tf.float32), training=False).numpy()[0]
        np.testing.assert_allclose(from_keras, from_bytes[i], rtol=1e-5, atol=1e-5)
    assert not np.allclose(from_bytes, from_bytes[:1]), "all images gave one answer"


def test_metadata_in_assets(trained) -> None:
    from emotion_tf.config import load_config

    meta = read_metadata(trained.export_path)
    run_metrics = json.loads((trained.run_dir / "metrics.json").read_text())
    config = load_config(trained.run_dir / "config.yaml")
    assert (trained.export_path / "assets" / METADATA_FILE).is_file()
    assert meta["class_names"] == run_metrics["class_names"] == ["happy", "sad"]
    assert meta["input_size"] == config.model.input_size == 32
    assert meta["channels"] == 3
    for key in ("accuracy", "balanced_accuracy", "roc_auc"):
        assert meta["metrics"][key] == pytest.approx(run_metrics[key])
    assert meta["config_hash"] == config.digest()
    assert meta["package_version"] == __version__
    assert meta["tensorflow_version"] == tf.__version__
    assert meta["signatures"] == {BYTES_SIGNATURE: "image_bytes", IMAGES_SIGNATURE: "images"}


def test_export_stores_weights_once(trained) -> None:
    """Keras 3 model.export stores every variable twice (keras-team/keras#23553); we must not."""
    import keras

    keras_model = keras.models.load_model(trained.run_dir / "best.keras", safe_mode=True)
    weights = weights_nbytes(keras_model)
    assert read_metadata(trained.export_path)["weights_bytes"] == weights
    variables = sum(f.stat().st_size for f in (trained.export_path / "variables").iterdir())
    total = sum(f.stat().st_size for f in trained.export_path.rglob("*") if f.is_file())
    assert variables <= 1.1 * weights, (variables, weights)
    # The graph itself is a fixed ~100-150 KB on top, whatever the model width.
    assert total <= 1.1 * weights + 256 * 1024, (total, weights)


def test_warmup_requests_parse_and_replay(trained) -> None:
    pytest.importorskip("tensorflow_serving", reason="pip install --no-deps tensorflow-serving-api")
    from emotion_tf.export import read_warmup_requests

    path = trained.export_path / WARMUP_DIR / WARMUP_FILE
    assert path.is_file()
    records = read_warmup_requests(trained.export_path)
    by_signature = {r.predict_log.request.model_spec.signature_name: r for r in records}
    assert set(by_signature) == {BYTES_SIGNATURE, IMAGES_SIGNATURE}
    assert read_metadata(trained.export_path)["warmup_requests"] == 2
    loaded = tf.saved_model.load(str(trained.export_path))
    for signature, input_name in ((BYTES_SIGNATURE, "image_bytes"), (IMAGES_SIGNATURE, "images")):
        request = by_signature[signature].predict_log.request
        assert list(request.inputs) == [input_name]
        value = tf.make_ndarray(request.inputs[input_name])
        outputs = loaded.signatures[signature](**{input_name: tf.constant(value)})
        assert outputs["probabilities"].shape == (1, 2)
    png = tf.make_ndarray(by_signature[BYTES_SIGNATURE].predict_log.request.inputs["image_bytes"])
    assert tf.io.decode_png(png[0]).shape == (32, 32, 3)


def test_export_without_serving_api_skips_warmup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from emotion_tf.config import ModelConfig
    from emotion_tf.model.alexnet import build_alexnet

    monkeypatch.setitem(sys.modules, "tensorflow_serving", None)  # import now raises ImportError
    monkeypatch.setitem(sys.modules, "tensorflow_serving.apis", None)
    model = build_alexnet(ModelConfig(input_size=32, width=0.0625), 2)
    with caplog.at_level(logging.WARNING, logger="emotion_tf.export"):
        target = export_model(model, tmp_path / "export", ["happy", "sad"])
    assert not (target / WARMUP_DIR / WARMUP_FILE).exists()
    assert read_metadata(target)["warmup_requests"] == 0
    assert any("tensorflow-serving-api" in r.getMessage() for r in caplog.records)
    assert LoadedExport(target).predict_bytes(
        [tf.io.encode_png(np.zeros([8, 8, 3], np.uint8)).numpy()]
    )["probabilities"].shape == (1, 2)


def test_cli_export_versions_never_overwrite(trained, tmp_path: Path) -> None:
    from emotion_tf.cli import main

    base = tmp_path / "export"
    runner = CliRunner()

    def export(*extra: str):
        return runner.invoke(
            main, ["export", str(trained.run_dir), "--export-dir", str(base), *extra]
        )

    first = export()
    assert first.exit_code == 0, first.output
    assert Path(first.output.strip().splitlines()[-1]) == base / "1"
    assert export().exit_code == 0
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]

    before = (base / "2" / "saved_model.pb").stat().st_mtime_ns
    clash = export("--version", "2")
    assert clash.exit_code == 2
    assert "already exists" in clash.output and str(base / "2") in clash.output
    assert (base / "2" / "saved_model.pb").stat().st_mtime_ns == before
    assert not [p for p in base.iterdir() if p.name.startswith(".tmp")], "temp folder left behind"

    assert export("--version", "7").exit_code == 0
    assert export().exit_code == 0
    assert sorted(int(p.name) for p in base.iterdir()) == [1, 2, 7, 8]
    assert LoadedExport(base).version == 8


def test_claim_version_never_replaces_a_version_that_appeared(tmp_path: Path) -> None:
    """A concurrent export may take the version between check and rename."""
    base = tmp_path / "export"
    for name in ("3", "4"):
        (base / name).mkdir(parents=True)
    (base / "3" / "saved_model.pb").write_text("theirs")

    ours = base / ".tmp-3"
    ours.mkdir()
    (ours / "saved_model.pb").write_text("ours")
    with pytest.raises(ModelDirError, match="appeared while exporting"):
        _claim_version(ours, base, 3, auto_version=False)
    with pytest.raises(ModelDirError):  # an empty folder counts too: os.rename would replace it
        _claim_version(ours, base, 4, auto_version=False)
    assert (base / "3" / "saved_model.pb").read_text() == "theirs"

    target = _claim_version(ours, base, 3, auto_version=True)
    assert target == base / "5"
    assert (target / "saved_model.pb").read_text() == "ours"
