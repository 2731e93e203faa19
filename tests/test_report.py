"""Run reports: PNG figures and report.html written by `train` and by `emotion-tf report`, and
the TensorBoard preview of augmentation."""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from emotion_tf.cli import main
from emotion_tf.metrics import roc_auc
from emotion_tf.report.build import build_report, report_after_training
from emotion_tf.report.html import fmt
from emotion_tf.report.plots import roc_points
from tests.conftest import tiny_overrides

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURES = (
    "curves.png",
    "confusion_matrix.png",
    "roc_curve.png",
    "accuracy_coverage.png",
    "mistakes.png",
)


@pytest.fixture(scope="module")
def run_dir(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from emotion_tf.config import load_config
    from emotion_tf.train.trainer import train

    run = tmp_path_factory.mktemp("report") / "run"
    # With the test-time flip: the report must evaluate the way training's final evaluation did.
    overrides = tiny_overrides(
        run,
        tiny_data_dir,
        **{"train.epochs": 2, "train.strategy": "default", "model.test_time_flip": "true"},
    )
    train(load_config(None, overrides), export=False)
    return run


class _Page(HTMLParser):
    """Collects data-metric cells, image sources and any external reference."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: dict[str, str] = {}
        self.images: dict[str, str] = {}
        self.external: list[str] = []
        self._metric: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if "data-metric" in values:
            self._metric = values["data-metric"]
        if tag == "img":
            self.images[values.get("id") or ""] = values.get("src") or ""
        for key in ("src", "href"):
            if values.get(key) and not values[key].startswith("data:"):
                self.external.append(values[key])
        if tag in ("script", "link"):
            self.external.append(tag)

    def handle_data(self, data: str) -> None:
        if self._metric is not None:
            self.metrics[self._metric] = data.strip()
            self._metric = None


def assert_png(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def test_train_writes_the_report(run_dir: Path) -> None:
    report = run_dir / "report"
    for name in FIGURES:
        width, height = assert_png((report / name).read_bytes())
        assert width > 200 and height > 100
    assert (report / "report.html").is_file()


def test_html_is_self_contained_and_its_numbers_match_metrics_json(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    page = _Page()
    page.feed((run_dir / "report" / "report.html").read_text())
    assert page.external == []
    for key in ("count", "accuracy", "balanced_accuracy", "roc_auc", "skipped_files"):
        assert page.metrics[key] == fmt(metrics[key]), key
    for name, row in metrics["per_class"].items():
        for key in ("precision", "recall", "f1", "support"):
            assert page.metrics[f"per_class.{name}.{key}"] == fmt(row[key])
    for i, row in enumerate(metrics["confusion_matrix"]):
        for j, value in enumerate(row):
            assert int(page.metrics[f"confusion_matrix.{i}.{j}"]) == value
    assert float(page.metrics["accuracy"]) == pytest.approx(metrics["accuracy"], abs=5e-5)
    assert set(page.images) == {"curves", "confusion", "roc", "coverage", "mistakes"}
    for src in page.images.values():
        assert src.startswith("data:image/png;base64,")
        assert_png(base64.b64decode(src.split(",", 1)[1]))
    html = (run_dir / "report" / "report.html").read_text()
    assert "learning_rate: 0.001" in html  # the resolved config is included


def test_validation_predictions_agree_with_metrics_json(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rows = list(csv.DictReader((run_dir / "report" / "validation_predictions.csv").open()))
    assert len(rows) == metrics["count"]
    accuracy = np.mean([r["true"] == r["predicted"] for r in rows])
    assert accuracy == pytest.approx(metrics["accuracy"], abs=1e-9)
    probs = np.array([[float(r["happy"]), float(r["sad"])] for r in rows])
    truth = np.array([r["true"] == "sad" for r in rows], dtype=np.int64)
    assert roc_auc(truth, probs[:, 1]) == pytest.approx(metrics["roc_auc"], abs=1e-6)
    assert all(Path(r["path"]).is_file() for r in rows)


def test_report_of_a_flipped_run_has_no_warning(run_dir: Path, tmp_path: Path) -> None:
    """Nothing changed since training, so the recomputed predictions match metrics.json."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    report = build_report(run_dir, out_dir=tmp_path / "again")
    assert report.notes == []
    html = (tmp_path / "again" / "report.html").read_text()
    assert "differ from metrics.json" not in html
    rows = list(csv.DictReader((tmp_path / "again" / "validation_predictions.csv").open()))
    probs = np.array([[float(r["happy"]), float(r["sad"])] for r in rows])
    truth = np.array([r["true"] == "sad" for r in rows], dtype=np.int64)
    assert np.mean(probs.argmax(axis=1) == truth) == pytest.approx(metrics["accuracy"], abs=1e-9)
    assert roc_auc(truth, probs[:, 1]) == pytest.approx(metrics["roc_auc"], abs=1e-6)


def test_report_command_rewrites_into_another_folder(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere"
    result = CliRunner().invoke(
        main, ["report", str(run_dir), "--output", str(out), "--mistakes", "4"]
    )
    assert result.exit_code == 0, result.output
    for name in (*FIGURES, "report.html"):
        assert (out / name).is_file()
    assert str(out / "report.html") in result.stdout


def test_report_command_errors_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: not a finished run directory")


def test_report_without_data_still_writes_curves_and_confusion(run_dir: Path, tmp_path) -> None:
    report = build_report(run_dir, out_dir=tmp_path / "r", data_dir=tmp_path / "nowhere")
    names = {p.name for p in report.files}
    assert {"curves.png", "confusion_matrix.png", "report.html"} <= names
    assert "roc_curve.png" not in names
    assert any("unavailable" in note for note in report.notes)
    assert "unavailable" in (tmp_path / "r" / "report.html").read_text()


def test_report_failure_after_training_is_only_logged(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        assert report_after_training(tmp_path / "missing", model=None, validation=None) is None
    assert "could not write the run report" in caplog.text


def test_roc_points_integrate_to_the_auc() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 200)
    scores = np.round(np.clip(truth * 0.3 + rng.normal(0.4, 0.25, 200), 0, 1), 2)  # with ties
    fpr, tpr = roc_points(truth.astype(bool), scores)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz
    assert trapezoid(tpr, fpr) == pytest.approx(roc_auc(truth, scores), abs=1e-12)


def test_tensorboard_gets_augmented_images(run_dir: Path) -> None:
    import tensorflow as tf

    events = list((run_dir / "logs" / "augmentation").glob("events.out.tfevents.*"))
    assert events
    seen: dict[str, list[int]] = {}
    for event in tf.compat.v1.train.summary_iterator(str(events[0])):
        for value in event.summary.value:
            seen.setdefault(value.tag, []).append(event.step)
            # Image summaries hold [width, height, encoded images...] as strings.
            images = tf.make_ndarray(value.tensor)
            assert int(images[0]) == 32 and int(images[1]) == 32
            assert len(images) - 2 == 8
            assert all(bytes(b).startswith(PNG_SIGNATURE) for b in images[2:])
    assert seen["augmentation/original"] == [0]
    assert seen["augmentation/augmented"] == [0, 1, 2]
    scalars = list((run_dir / "logs" / "validation").glob("events.out.tfevents.*"))
    assert scalars  # Keras' own TensorBoard callback still logs the scalars


def test_html_escapes_text() -> None:
    from emotion_tf.report.html import render

    page = render("<run>", {"class_names": ["a<b", "c"], "count": 1}, [], "x: '<y>'", {}, [])
    assert "<run>" not in page.replace("<title>", "").replace("</title>", "")
    assert "&lt;run&gt;" in page and re.search(r"x: &#x27;&lt;y&gt;&#x27;", page)
