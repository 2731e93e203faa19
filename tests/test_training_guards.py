"""Training refuses what would make its results meaningless: non-finite settings, a diverged
loss, NaN scores; a finished run is not silently retrained; bad inputs leave nothing behind.
`evaluate` says how many inputs it skipped and exits 1, like `predict`."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from emotion_tf.cli import main
from emotion_tf.config import load_config
from emotion_tf.errors import ConfigError, NonFiniteError
from emotion_tf.export import export_model, list_versions
from emotion_tf.metrics import classification_metrics
from tests.conftest import tiny_overrides


def cli(*args: str) -> tuple[int, list[str]]:
    """Exit code and the output lines that are not log records."""
    result = CliRunner().invoke(main, list(args))
    lines = result.output.strip().splitlines()
    return result.exit_code, [line for line in lines if not line.startswith(("INFO", "WARNING"))]


def train_args(run_dir: Path, data_dir: Path, **extra: object) -> list[str]:
    args = ["train"]
    for override in tiny_overrides(run_dir, data_dir, **extra):
        args += ["--set", override]
    return args


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", ".inf", "1e999"])
def test_non_finite_settings_are_refused(value: str, tiny_data_dir: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="train.learning_rate: expected a finite number"):
        load_config(None, [f"train.learning_rate={value}"])
    run_dir = tmp_path / "run"
    code, lines = cli(*train_args(run_dir, tiny_data_dir, **{"train.learning_rate": value}))
    assert code == 2 and len(lines) == 1 and "train.learning_rate" in lines[0], lines
    assert not run_dir.exists()


def test_missing_data_dir_leaves_no_run_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    code, lines = cli(*train_args(run_dir, tmp_path / "no-such-data"))
    assert code == 2 and len(lines) == 1 and "no-such-data" in lines[0], lines
    assert not run_dir.exists()


def test_diverged_loss_stops_the_run(tiny_data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    code, lines = cli(*train_args(run_dir, tiny_data_dir, **{"train.learning_rate": 1e30}))
    assert code == 2, lines
    assert len(lines) == 1 and "training diverged: loss is" in lines[0], lines
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "export").exists()


def test_metrics_refuse_nan_scores() -> None:
    labels = np.array([0, 1, 0, 1])
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [math.nan, math.nan], [0.4, 0.6]])
    with pytest.raises(NonFiniteError, match="NaN or infinite scores for 1 of 4"):
        classification_metrics(labels, scores, ["happy", "sad"])
    assert classification_metrics(labels, np.nan_to_num(scores, nan=0.5), ["happy", "sad"])


def test_finished_run_is_not_retrained(tiny_data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = train_args(run_dir, tiny_data_dir)
    code, lines = cli(*args)
    assert code == 0, lines
    best = run_dir / "best.keras"
    stamp, metrics = best.stat().st_mtime_ns, (run_dir / "metrics.json").read_text()
    code, lines = cli(*args)
    assert code == 0, lines
    assert any("already complete" in line and "--overwrite" in line for line in lines), lines
    assert best.stat().st_mtime_ns == stamp
    assert (run_dir / "metrics.json").read_text() == metrics
    assert list_versions(run_dir / "export") == [1]
    code, lines = cli(*args, "--overwrite")
    assert code == 0, lines
    assert not any("already complete" in line for line in lines)
    assert list_versions(run_dir / "export") == [1, 2]


def test_evaluate_exits_1_and_counts_skipped_inputs(tmp_path: Path) -> None:
    from emotion_tf.config import ModelConfig
    from emotion_tf.model.alexnet import build_alexnet

    base = tmp_path / "export"
    export_model(build_alexnet(ModelConfig(input_size=32, width=0.0625), 2), base, ["a", "b"])
    data = tmp_path / "data"
    for name, color in (("a", (250, 20, 20)), ("b", (20, 20, 250))):
        (data / name).mkdir(parents=True)
        for i in range(2):
            out = io.BytesIO()
            Image.new("RGB", (32, 32), color).save(out, format="PNG")
            (data / name / f"{i}.png").write_bytes(out.getvalue())
    (data / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    result = CliRunner().invoke(
        main, ["evaluate", str(data), "--model", str(base), "--faces", "none", "--format", "json"]
    )
    assert result.exit_code == 1, result.output
    assert "1 of 5 photo(s) unreadable" in result.output and "broken.png" in result.output
    metrics = json.loads(result.output[: result.output.rindex("}") + 1])
    assert metrics["count"] == 4
