"""TFLite export: float32 agrees with the SavedModel, quantized files stay close, metadata
carries class names and input size, and the .tflite serves predict, evaluate and the API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import emotion_tf
from emotion_tf.errors import ConfigError, ModelDirError
from emotion_tf.evaluate import evaluate_export
from emotion_tf.predictors.resolve import open_model
from emotion_tf.predictors.tflite_model import TFLitePredictor
from emotion_tf.tflite.convert import convert_to_tflite
from emotion_tf.tflite.source import export_tflite, load_source
from tests.packaged_helpers import tiny_last_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_data_dir: Path) -> Path:
    return tiny_last_run(tmp_path_factory, tiny_data_dir)


@pytest.fixture(scope="module")
def images(tiny_data_dir: Path) -> np.ndarray:
    """Validation images at several sizes (resized outside the model, like predict does)."""
    pictures = []
    for path in sorted((tiny_data_dir / "validation").rglob("*.jpg"))[:12]:
        with Image.open(path) as image:
            pictures.append(np.asarray(image.convert("RGB").resize((48, 48))))
    return np.stack(pictures)


def test_float32_tflite_matches_the_saved_model_within_1e4(run: Path, images, tmp_path) -> None:
    path = export_tflite(run, tmp_path / "m.tflite")
    tflite = open_model(path)
    assert isinstance(tflite, TFLitePredictor)
    saved_model = open_model(run)  # the run's export: the same weights, flip averaging inside
    ours = tflite.predict_images(images)
    reference = saved_model.predict_images(images)
    assert np.abs(ours["probabilities"] - reference["probabilities"]).max() < 1e-4
    assert list(ours["label"]) == list(reference["label"])
    one = tflite.predict_images(images[:1])  # the batch size can change between calls
    assert np.abs(one["probabilities"] - reference["probabilities"][:1]).max() < 1e-4


def test_metadata_and_fixed_image_input(run: Path, tmp_path) -> None:
    path = export_tflite(run, tmp_path / "m.tflite")
    model = TFLitePredictor(path)
    assert model.class_names == ["happy", "sad"]
    assert model.input_size == 32 and model.channels == 3
    assert model.metadata["test_time_flip"] is True and model.metadata["quantize"] == "none"
    assert model.metadata["config_hash"] == open_model(run).metadata["config_hash"]
    details = model._interpreter.get_input_details()[0]
    assert details["dtype"] == np.uint8 and list(details["shape"][1:]) == [32, 32, 3]


def test_quantized_files_are_smaller_and_close(run: Path, images, tmp_path) -> None:
    float32 = export_tflite(run, tmp_path / "f32.tflite")
    reference = TFLitePredictor(float32).predict_images(images)["probabilities"]
    for mode in ("float16", "int8"):
        path = export_tflite(run, tmp_path / f"{mode}.tflite", quantize=mode)
        assert path.stat().st_size < 0.7 * float32.stat().st_size
        model = TFLitePredictor(path)
        assert model.metadata["quantize"] == mode
        assert np.abs(model.predict_images(images)["probabilities"] - reference).max() < 0.05
    with pytest.raises(ConfigError, match="quantize must be one of"):
        convert_to_tflite(load_source(run).model, quantize="int4")


def test_tflite_serves_evaluate_predict_and_the_api(run: Path, tiny_data_dir, tmp_path) -> None:
    path = export_tflite(run, tmp_path / "m.tflite")
    tflite_metrics = evaluate_export(open_model(path), tiny_data_dir)
    reference = evaluate_export(open_model(run), tiny_data_dir)
    assert tflite_metrics["count"] == reference["count"] > 0
    assert tflite_metrics["accuracy"] == pytest.approx(reference["accuracy"])
    model = emotion_tf.load(path)
    results = model.predict([str(tiny_data_dir / "validation"), b"junk"], faces="none")
    assert all(r.ok for r in results[:-1]) and "not an image" in results[-1].error


def test_a_tflite_without_emotion_tf_metadata_is_refused(run: Path, tmp_path) -> None:
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(convert_to_tflite(load_source(run).model))
    with pytest.raises(ModelDirError, match="has no 'emotion_tf' metadata"):
        TFLitePredictor(bare)
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\0" * 64)
    with pytest.raises(ModelDirError, match="junk.tflite"):
        open_model(junk)


def test_benchmark_script_runs_at_tiny_size(tiny_data_dir: Path, tmp_path: Path, capsys) -> None:
    """benchmarks/tflite.py end to end on an untrained 32 px model (measures nothing)."""
    import importlib
    import json

    module = importlib.import_module("benchmarks.tflite")
    out = tmp_path / "tflite.json"
    assert module.main(["--smoke", "--out", str(out), "--data", str(tiny_data_dir)]) == 0
    figures = {f["name"]: f for f in json.loads(out.read_text())["figures"]}
    assert figures["tflite.tflite_none.max_prob_diff_vs_savedmodel"]["status"] == "PASS"
    for name in ("savedmodel", "tflite_none", "tflite_float16", "tflite_int8"):
        assert figures[f"tflite.{name}.b1_p50"]["value"] > 0
    assert "SUMMARY tflite.int8.accuracy_drop" in capsys.readouterr().out


def test_fixed_savedmodel_is_the_tflite_graph_for_other_converters(
    run: Path, images, tmp_path
) -> None:
    """`export --format fixed-savedmodel`: the .tflite's graph as a SavedModel (the start of
    the TF.js route): the same numbers, class names beside it, no decoder or resize inside."""
    import json

    import tensorflow as tf
    from click.testing import CliRunner

    from emotion_tf.cli import main
    from emotion_tf.export_checks import read_meta_graph
    from emotion_tf.preprocess import resize_uint8

    out = tmp_path / "fixed"
    args = ["export", str(run), "--format", "fixed-savedmodel", "--output", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    resized = resize_uint8(tf.constant(images), 32)  # outside the graph, as the .tflite's
    ours = serve(images=resized)["probabilities"].numpy()
    tflite = TFLitePredictor(export_tflite(run, tmp_path / "m.tflite"))
    assert np.abs(ours - tflite.predict_images(images)["probabilities"]).max() < 1e-5
    info = json.loads((out / "emotion_tf.json").read_text())
    assert info["class_names"] == ["happy", "sad"] and info["input_size"] == 32
    assert info["test_time_flip"] is True
    graph = read_meta_graph(out).graph_def
    ops = {node.op for node in graph.node}
    ops |= {node.op for function in graph.library.function for node in function.node_def}
    assert not ops & {"DecodeImage", "DecodeJpeg", "DecodePng", "ScaleAndTranslate"}
    again = CliRunner().invoke(main, args)
    assert again.exit_code != 0 and "not an empty folder" in again.output
