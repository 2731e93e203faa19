"""Hostile input, built at test time: one-line errors or correct answers, bounded memory, and one
bad item never stops the others."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import emotion_tf
from emotion_tf.api.inputs import to_uint8
from emotion_tf.data.files import list_images
from emotion_tf.pipeline.sources import expand_inputs

REPO = Path(__file__).resolve().parents[1]

_PEAK_SCRIPT = r"""
import json, resource, sys
import numpy as np
from click.testing import CliRunner
import emotion_tf
from emotion_tf.cli import main

strip = sys.argv[1]
result = CliRunner().invoke(main, ["predict", "--format", "json", strip])
model = emotion_tf.load()
answers = model.predict([np.zeros((2, 50000), np.uint8), np.zeros((1, 100000, 3), np.uint8),
                         np.full((64, 64), 128, np.uint8)])
print(json.dumps({
    "exit": result.exit_code, "stdout": result.stdout, "stderr": result.stderr,
    "errors": [a.error for a in answers],
    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def test_an_extreme_strip_and_huge_arrays_are_refused_in_bounded_memory(tmp_path: Path) -> None:
    strip = tmp_path / "strip_45000.png"
    Image.new("L", (2, 45000)).save(strip, optimize=True)
    assert strip.stat().st_size < 2000
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(strip)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["exit"] == 1
    [row] = json.loads(report["stdout"])
    assert "aspect ratio" in row["error"] and "Traceback" not in report["stderr"]
    first, second, third = report["errors"]
    assert "aspect ratio" in first and "aspect ratio" in second and third is None
    assert report["peak_mb"] < 2048, report["peak_mb"]


def test_sixteen_bit_float_and_la_images_are_read_by_their_real_range() -> None:
    ramp = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))
    np.testing.assert_array_equal(to_uint8(ramp.astype(np.uint16) * 257), ramp)
    np.testing.assert_array_equal(to_uint8(ramp.astype(np.float32) / 255.0), ramp)
    model = emotion_tf.load()
    eight = model.predict_photo(Image.fromarray(ramp, "L"), faces="none")
    sixteen = Image.fromarray(ramp.astype(np.uint16) * 257)  # mode I;16
    as_float = Image.fromarray(ramp.astype(np.float32) / 255.0, "F")
    with_alpha = Image.fromarray(ramp, "L").convert("LA")
    answers = model.predict_photo([sixteen, as_float, with_alpha, "missing.png"], faces="none")
    for answer in answers[:3]:
        assert answer.error is None and answer.label == eight.label
        assert answer.confidence == pytest.approx(eight.confidence, abs=1e-5)
    assert answers[3].error == "no such file or folder"


def test_a_very_deep_tree_is_walked_and_an_unreadable_folder_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / "deep"
    folder = deep
    deep.mkdir()
    for _ in range(1100):  # one level at a time (pathlib's parents=True recurses)
        folder = folder / "d"
        os.mkdir(folder)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")
    (folder / "x.png").write_bytes(buffer.getvalue())
    try:
        images, _ = list_images(deep)
        assert images == [str(folder / "x.png")]
    finally:  # removed here, bottom up: pytest's own clean-up recurses and would fail on it
        (folder / "x.png").unlink()
        while folder != deep:
            os.rmdir(folder)
            folder = folder.parent

    locked = tmp_path / "tree" / "locked"
    locked.mkdir(parents=True)
    (tmp_path / "tree" / "ok.png").write_bytes(buffer.getvalue())
    real_scandir = os.scandir

    def scandir(path):  # root reads every folder, so the refusal is simulated
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    rows = list(expand_inputs([tmp_path / "tree"]))
    assert rows[0] == (str(tmp_path / "tree" / "ok.png"), None)
    assert rows[1][0] == str(locked) and "Permission denied" in rows[1][1]
