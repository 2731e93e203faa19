"""The packaged-model format: int8 weights per output channel, metadata, safe loading, and
predictions that match the run's own checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emotion_tf.errors import ModelDirError
from emotion_tf.packaged.archive import read_metadata, read_packaged
from emotion_tf.packaged.build import pack_run
from emotion_tf.packaged.weights import dequantize_kernel, quantize_kernel
from emotion_tf.predictors.resolve import kept_checkpoint, open_model
from tests.conftest import REPO_ROOT
from tests.packaged_helpers import tiny_last_run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_data_dir: Path) -> Path:
    return tiny_last_run(tmp_path_factory, tiny_data_dir)


def test_quantize_kernel_error_is_within_half_a_step_per_output_channel() -> None:
    rng = np.random.default_rng(0)
    kernel = rng.normal(0, 1, (3, 3, 4, 5)).astype(np.float32) * np.arange(1, 6)
    codes, scales = quantize_kernel(kernel)
    assert codes.dtype == np.int8 and scales.shape == (5,)
    error = np.abs(dequantize_kernel(codes, scales) - kernel)
    assert np.all(error <= scales / 2 + 1e-7)
    assert np.allclose(scales, np.abs(kernel).reshape(-1, 5).max(axis=0) / 127)


def test_pack_records_provenance_and_predicts_like_the_checkpoint(
    tiny_run: Path, tiny_data_dir: Path, tmp_path: Path
) -> None:
    result = pack_run(tiny_run, tmp_path / "m.npz", temperature=1.5)
    assert result.checkpoint == kept_checkpoint(tiny_run) == tiny_run / "last.keras"
    meta = read_metadata(result.path)
    config_text = (tiny_run / "config.yaml").read_text()
    assert meta["config_hash"] == result.config_hash and len(result.config_hash) == 16
    assert meta["config"]["train"]["keep"] == "last" and "keep: last" in config_text
    run_metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert meta["run_metrics"]["accuracy"] == run_metrics["accuracy"]
    assert meta["temperature"] == 1.5 and meta["class_names"] == run_metrics["class_names"]

    files = sorted((tiny_data_dir / "validation").rglob("*.jpg"))[:8]
    images = np.stack([_image(p) for p in files])
    packaged = open_model(result.path)
    export = open_model(tiny_run)  # the run's SavedModel export of the same weights
    assert packaged.temperature == 1.5 and packaged.test_time_flip
    assert export.metadata["config_hash"] == meta["config_hash"]
    packaged.temperature = 1.0
    ours = packaged.predict_images(images)["probabilities"]
    reference = export.predict_images(images)["probabilities"]
    assert np.abs(ours - reference).max() < 0.02  # int8 weights: close, not identical


def _image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((32, 32)))


def test_pack_refuses_a_file_over_the_limit(tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelDirError, match="over the 1,000-byte limit"):
        pack_run(tiny_run, tmp_path / "big.npz", max_bytes=1000)
    assert not (tmp_path / "big.npz").exists()


def test_reading_a_file_that_is_not_a_packaged_model_names_it(tmp_path: Path) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ModelDirError, match="junk.npz"):
        read_packaged(junk)
    other = tmp_path / "other.npz"
    np.savez(other, metadata=np.frombuffer(b'{"format": "x"}', np.uint8))
    with pytest.raises(ModelDirError, match="format is not emotion-tf-packaged"):
        read_packaged(other)
    with pytest.raises(ModelDirError, match="not found"):
        read_packaged(tmp_path / "absent.npz")


def test_pack_command_fits_a_temperature_and_records_it(
    tiny_run: Path, tiny_data_dir: Path, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from emotion_tf.cli import main

    target = tmp_path / "calibrated.npz"
    folders = ["--calibrate", str(tiny_data_dir / "train"), "--calibrate", str(tiny_data_dir)]
    result = CliRunner().invoke(main, ["pack", str(tiny_run), "-o", str(target), *folders])
    assert result.exit_code == 0, result.output
    meta = read_metadata(target)
    calibration = meta["calibration"]
    assert meta["temperature"] == calibration["temperature"] > 0
    train, validation = calibration["fitted_on"]  # a folder without splits, its validation/
    assert train.endswith("train") and validation.endswith("validation")
    counts = {
        split: len(list((tiny_data_dir / split).rglob("*.*"))) for split in ("train", "validation")
    }
    assert calibration["count"] + calibration["skipped"] <= sum(counts.values())
    assert calibration["count"] > counts["train"] // 2
    assert calibration["nll_after"] <= calibration["nll_before"]
    assert f"config hash {meta['config_hash']}" in result.output
    refused = CliRunner().invoke(main, ["pack", str(tmp_path), "-o", str(tmp_path / "x.npz")])
    assert refused.exit_code == 2 and "not a finished run directory" in refused.output


def test_recipe_hash_ignores_where_a_run_was_made(tmp_path: Path) -> None:
    from emotion_tf.config import load_config
    from emotion_tf.packaged.build import recipe_hash

    recipe = REPO_ROOT / "configs/packaged-average.yaml"
    config = load_config(recipe)
    moved = load_config(
        recipe,
        [f"train.run_dir={tmp_path}", "data.data_dir=/elsewhere", "train.init_from=/w/run"],
    )
    changed = load_config(recipe, ["train.ema_momentum=0.99"])
    assert recipe_hash(config) == recipe_hash(moved) != recipe_hash(changed)
    assert config.digest() != moved.digest()


def test_recipe_survives_options_added_after_packing() -> None:
    import copy

    from emotion_tf.config import load_config
    from emotion_tf.packaged.build import recipe_differences, recipe_hash

    recipe = REPO_ROOT / "configs/packaged-average.yaml"
    config = load_config(recipe)
    stored = copy.deepcopy(config.to_dict())
    del stored["data"]["augment"]["jpeg"]  # packed before the option existed
    del stored["data"]["rehearsal_dir"]
    assert recipe_differences(stored, config) == []
    assert recipe_hash(load_config(recipe, ["data.augment.jpeg=0.0"])) == recipe_hash(config)
    changed = load_config(recipe, ["data.augment.jpeg=0.5", "train.epochs=3"])
    assert recipe_differences(stored, changed) == ["data.augment.jpeg", "train.epochs"]
    assert recipe_hash(changed) != recipe_hash(config)


def test_packaged_model_benchmark_runs_at_tiny_size(
    tiny_run: Path, tiny_data_dir: Path, tmp_path: Path
) -> None:
    """benchmarks/packaged_model.py end to end on the tiny run (measures nothing)."""
    import importlib

    module = importlib.import_module("benchmarks.packaged_model")
    packed = pack_run(tiny_run, tmp_path / "m.npz", temperature=2.0)
    out, figure = tmp_path / "out.json", tmp_path / "reliability.png"
    argv = ["--run", str(tiny_run), "--packaged", str(packed.path), "--fer", str(tiny_data_dir)]
    argv += ["--figure", str(figure), "--out", str(out)]
    assert module.main(argv) == 0
    figures = {f["name"]: f["value"] for f in json.loads(out.read_text())["figures"]}
    assert abs(figures["packaged.fer.accuracy_drop"]) <= 10
    assert figures["packaged.fer.max_prob_diff"] < 0.02
    assert figure.stat().st_size > 1000


def test_serving_a_packaged_file_exports_it_with_flip_and_temperature(
    tiny_run: Path, tiny_data_dir: Path, tmp_path: Path
) -> None:
    from emotion_tf.export import LoadedExport
    from emotion_tf.packaged.saved_model import servable_model_base

    packed = pack_run(tiny_run, tmp_path / "m.npz", temperature=0.5)
    files = sorted((tiny_data_dir / "validation").rglob("*.jpg"))[:6]
    images = np.stack([_image(p) for p in files])
    with servable_model_base(str(packed.path)) as base:
        served = LoadedExport(base)
        assert served.metadata["temperature"] == 0.5 and served.metadata["test_time_flip"]
        outputs = served.predict_images(images)["probabilities"]
    assert not Path(base).exists()  # the temporary export is gone with the server
    reference = open_model(packed.path).predict_images(images)["probabilities"]
    assert np.abs(outputs - reference).max() < 1e-4
    with pytest.raises(ModelDirError, match="TFLite file"), servable_model_base("m.tflite"):
        pass


def test_export_command_writes_a_packaged_file_as_the_next_saved_model_version(
    tiny_run: Path, tiny_data_dir: Path, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from emotion_tf.cli import main
    from emotion_tf.export import LoadedExport

    packed = pack_run(tiny_run, tmp_path / "m.npz", temperature=0.5)
    exports = tmp_path / "exports"
    runner = CliRunner()
    for version in (1, 2):
        result = runner.invoke(main, ["export", str(packed.path), "--export-dir", str(exports)])
        assert result.exit_code == 0, result.output
        assert result.output.strip() == str(exports / str(version))
    files = sorted((tiny_data_dir / "validation").rglob("*.jpg"))[:4]
    images = np.stack([_image(p) for p in files])
    exported = LoadedExport(exports / "2").predict_images(images)["probabilities"]
    reference = open_model(packed.path).predict_images(images)["probabilities"]
    assert np.abs(exported - reference).max() < 1e-4
    missing_dir = runner.invoke(main, ["export", str(packed.path)])
    assert missing_dir.exit_code == 2 and "--export-dir" in missing_dir.output
    as_run = runner.invoke(main, ["export", str(tiny_run / "config.yaml")])
    assert as_run.exit_code == 2 and "config.yaml is a file" in as_run.output
