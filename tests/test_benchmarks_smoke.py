"""The benchmark scripts run end to end at tiny sizes, and the precision switch trains and exports.

These prove the scripts work from a fresh install; they measure nothing (see benchmarks/README.md
for the real runs).
"""

from __future__ import annotations

import importlib
import json
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests.conftest import REPO_ROOT, tiny_overrides

pytestmark = pytest.mark.slow

SCRIPTS = (
    "train_throughput",
    "vs_pytorch",
    "precision",
    "predict_latency",
    "input_pipeline",
    "video",
    "tflite",
    "tfjs",
)


def _load(name: str) -> ModuleType:
    """The benchmark as the package module `python -m benchmarks.<name>` runs."""
    return importlib.import_module(f"benchmarks.{name}")


def _check_report(path: Path, output: str, expected: set[str]) -> dict:
    report = json.loads(path.read_text())
    figures = report["figures"]
    assert figures, "no figures written"
    names = {f["name"].split(".")[-1] for f in figures}
    assert expected <= names, f"missing figures: {expected - names}"
    for figure in figures:
        assert set(figure) >= {"name", "value", "unit", "target", "status"}
        assert figure["status"] in {"PASS", "FAIL", "INFO"}
        assert figure["value"] is not None and math.isfinite(figure["value"]), figure
        assert f"SUMMARY {figure['name']} " in output
    assert report["environment"]["cpus"] >= 1
    assert report["environment"]["tensorflow"]
    return report


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_help(name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "--out" in done.stdout and "--smoke" in done.stdout


def test_train_throughput_smoke(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "train.json"
    argv = ["--smoke", "--out", str(out), "--augment", "shipped", "keras"]
    assert _load("train_throughput").main(argv) == 0
    report = _check_report(
        out,
        capsys.readouterr().out,
        {"in_memory", "trainer_on_jpegs", "trainer_vs_in_memory", "epoch_callbacks"},
    )
    (details,) = report["details"].values()
    (peer,) = details["variants"]["keras"]
    assert peer["ratio"] > 0
    (run,) = details["variants"]["shipped"]
    assert run["ratio"] > 0 and run["cpu_ratio"] > 0
    assert [e["steps"] for e in run["epochs"]] == [4, 4, 4]  # 32 images in batches of 8
    profile = run["profile"]
    assert profile["steps"] >= 1, profile
    assert "model step" in profile["kernel_ms_by_stage"], profile
    # Every trainer run sits between two in-memory runs.
    assert len(details["in_memory_runs"]) == 3  # I T I T I for two variants


def test_vs_pytorch_smoke(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "torch.json"
    assert _load("vs_pytorch").main(["--smoke", "--out", str(out)]) == 0
    report = _check_report(
        out, capsys.readouterr().out, {"train_speedup", "infer_b8_speedup", "keras_train"}
    )
    (details,) = report["details"].values()
    # The PyTorch model must have exactly the Keras model's layers.
    assert details["trainable_parameters"]["keras"] == details["trainable_parameters"]["torch"]


def test_precision_smoke(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import keras

    out = tmp_path / "precision.json"
    assert _load("precision").main(["--smoke", "--out", str(out)]) == 0
    _check_report(out, capsys.readouterr().out, {"float32", "mixed_bfloat16", "fp16_vs_fp32"})
    assert keras.mixed_precision.global_policy().name == "float32"


def test_predict_latency_smoke(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "predict.json"
    assert _load("predict_latency").main(["--smoke", "--no-cli", "--out", str(out)]) == 0
    report = _check_report(
        out,
        capsys.readouterr().out,
        {"savedmodel_bytes_p50_vs_bare", "predict_paths_vs_forward_b64", "bare_forward_b64"},
    )
    (details,) = report["details"].values()
    assert details["files"] == 96


def test_input_pipeline_smoke(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "input.json"
    assert _load("input_pipeline").main(["--smoke", "--out", str(out)]) == 0
    report = _check_report(
        out, capsys.readouterr().out, {"first_epoch_vs_model", "cached_epochs_vs_model"}
    )
    (details,) = report["details"].values()
    assert details["images"] == 64
    assert details["first_epoch_limited_by"] in {
        "read",
        "decode",
        "resize",
        *details["augment_cost_us_per_image"],
    }


def test_video_smoke(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "video.json"
    assert _load("video").main(["--smoke", "--out", str(out)]) == 0
    report = _check_report(
        out,
        capsys.readouterr().out,
        {"fps", "cpu_ms_per_frame", "export_serving_images_ms", "keras_call_ms"},
    )
    names = {f["name"] for f in report["figures"]}
    assert {"video.one_face.end_to_end.fps", "video.four_faces.end_to_end.fps"} <= names


def _has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def test_float16_without_a_gpu_is_refused(tiny_data_dir: Path, tmp_path: Path) -> None:
    if _has_gpu():
        pytest.skip("float16 is refused only without a GPU")
    from click.testing import CliRunner

    from emotion_tf.cli import main

    overrides = tiny_overrides(
        tmp_path / "run", tiny_data_dir, **{"train.precision": "mixed_float16"}
    )
    result = CliRunner().invoke(main, ["train", *[a for o in overrides for a in ("--set", o)]])
    assert result.exit_code == 2
    last = result.stderr.splitlines()[-1]  # after the INFO line naming the strategy
    assert last.startswith("error: train.precision=mixed_float16 needs a GPU")
    assert "mixed_bfloat16" in last and result.stderr.count("error:") == 1
    assert not (tmp_path / "run" / "best.keras").exists()


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_and_exports(
    precision: str, tiny_data_dir: Path, tmp_path: Path
) -> None:
    """Mixed precision trains, keeps float32 probabilities, and exports a working SavedModel."""
    import keras

    if precision == "mixed_float16" and not _has_gpu():
        pytest.skip("float16 needs a GPU (refused on a CPU)")

    from emotion_tf.config import load_config
    from emotion_tf.export import LoadedExport
    from emotion_tf.train.trainer import train

    config = load_config(
        None, tiny_overrides(tmp_path / "run", tiny_data_dir, **{"train.precision": precision})
    )
    try:
        result = train(config)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model = keras.models.load_model(tmp_path / "run" / "best.keras")
    assert model.get_layer("conv1").dtype_policy.name == precision
    assert model.get_layer("probabilities").dtype_policy.name == "float32"
    assert math.isfinite(result.metrics["accuracy"])
    loaded = LoadedExport(result.export_path)
    blob = next((tiny_data_dir / "validation" / "happy").glob("*.jpg")).read_bytes()
    outputs = loaded.predict_bytes([blob, blob])
    assert outputs["probabilities"].dtype == np.float32
    np.testing.assert_allclose(outputs["probabilities"].sum(axis=1), 1.0, atol=1e-5)
    assert set(outputs["label"].astype(str)) <= {"happy", "sad"}


@pytest.mark.parametrize("name", ["precision", "predict_latency", "vs_pytorch"])
def test_benchmarks_measure_the_recipe_model(name: str) -> None:
    """The "fer" size is configs/fer2013.yaml's whole model (padding, stride, dropout...)."""
    import argparse

    from emotion_tf.config import load_config

    module = _load(name)
    functions = {"predict_latency": "size_specs"}
    sizes = getattr(module, functions.get(name, "size_configs"))
    args = argparse.Namespace(sizes=["fer"], smoke=False, jpeg_size_227=300)
    (spec,) = sizes(args)
    assert spec[1] == load_config(REPO_ROOT / "configs" / "fer2013.yaml").model


def test_benchmarks_are_a_package_on_the_config_system() -> None:
    for path in (REPO_ROOT / "benchmarks").glob("*.py"):
        text = path.read_text()
        assert "from common import" not in text, f"{path.name}: import benchmarks.<module>"
        assert "sys.path.insert(0, str(Path(__file__)" not in text, (
            f"{path.name}: run as python -m benchmarks.{path.stem}"
        )
        assert "import yaml" not in text, f"{path.name}: read configs with load_config"


def test_summary_lines_show_small_differences() -> None:
    from benchmarks.report import Figure

    assert " 2.50e-06 " in Figure("tfjs.max_abs_diff", 2.5e-6, "", "<=", 1e-4).line()
    assert " 0.0135 " in Figure("tfjs.max_abs_diff", 0.0135, "").line()
    assert " 0.0000 " in Figure("exact", 0.0, "").line()


def test_tfjs_needs_its_converter_and_node_modules_named(tiny_data_dir: Path) -> None:
    tfjs = _load("tfjs")
    with pytest.raises(SystemExit, match="--converter and --node-modules are required"):
        tfjs.main(["--data", str(tiny_data_dir)])


def test_tfjs_reference_images_are_half_of_each_class(tiny_data_dir: Path) -> None:
    images, labels = _load("tfjs").reference_images(tiny_data_dir, 4, 24, 1)
    assert images.shape == (4, 24, 24, 1) and images.dtype == np.uint8
    assert labels.tolist() == [0, 0, 1, 1]
